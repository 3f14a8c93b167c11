"""Public API of variable-length paged attention: ``plan_unified`` / ``UnifiedPlan.run``, and
the one-shot ``unified_attention``.

One call serves prefill, chunked prefill (new tokens on a cached prefix), decode (one new
token) and speculative verification (2-8 new tokens), mixed in one batch, as vLLM's
``triton_unified_attention.py`` and FlashInfer's batch prefill do. The layout is vLLM's:
``query`` ``[num_tokens, num_heads, head_dim]`` holds every sequence's new tokens back to
back, sequence ``i`` owning rows ``query_start_loc[i]:query_start_loc[i+1]``;
``seq_lens[i]`` counts its cached prefix plus those new tokens, whose K/V must already be
written to the cache (``write_kv_cache``) at positions ``seq_lens[i] - query_len ...
seq_lens[i] - 1``. Backends: ``numpy`` (float64 oracle, ``reference.py``), ``numba``
(``numba_backend.py``), ``triton`` (``triton_kernel.py``, launched by ``triton_run.py``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from paged_attn_kernels import _dtypes as dt
from paged_attn_kernels import _torch_path as tp
from paged_attn_kernels._arrays import Arr, describe, host_of, to_float_output
from paged_attn_kernels._validate import (
    KernelDtypeError,
    KernelInputError,
    _to_host,
    check_backend,
    check_caches,
    check_table_values,
)
from paged_attn_kernels.decode_plan import validate_mode
from paged_attn_kernels.unified.options import make_mods, varlen_batch
from paged_attn_kernels.unified.plan import UnifiedPlan, split_work

__all__ = ["plan_unified", "run_plan", "unified_attention"]


def _resolve(backend: str, first: Arr) -> str:
    check_backend(backend)
    on_device = first.device != "cpu"
    if backend == "auto":
        if on_device:
            return "triton"
        try:
            from paged_attn_kernels.unified import numba_backend  # noqa: F401
        except ImportError:
            return "numpy"
        return "numba"
    if backend in ("numpy", "numba") and on_device:
        raise KernelDtypeError(
            f"backend={backend!r} runs on host memory but {first.name} is on {first.device}"
        )
    if backend == "triton":
        if first.framework != "torch":
            raise KernelDtypeError(
                "backend='triton' takes torch tensors (CUDA, or CPU under TRITON_INTERPRET=1); "
                f"{first.name} is a numpy array"
            )
        if not on_device and not tp.interpreting():
            raise KernelDtypeError(
                f"backend='triton' needs CUDA tensors, {first.name} is on {first.device} "
                "(or TRITON_INTERPRET=1 set before the first Triton import)"
            )
    return backend


def _same_place(arrs: list[Arr]) -> None:
    first = arrs[0]
    for a in arrs[1:]:
        if a.framework != first.framework or a.device != first.device:
            raise KernelDtypeError(
                f"{a.name} is a {a.framework} array on {a.device} but {first.name} is a "
                f"{first.framework} array on {first.device}; pass one framework and device"
            )


def _int_vector(a: Arr, length: int, layout: str) -> None:
    if len(a.shape) != 1 or a.shape[0] != length:
        raise KernelInputError(f"{a.name} must be {layout} = [{length}], got shape {a.shape}")
    if not a.is_int:
        raise KernelDtypeError(f"{a.name} must hold integers (int32), got dtype {a.kind}")


def plan_unified(
    query: Any,
    key_cache: Any,
    block_table: Any,
    query_start_loc: Any,
    seq_lens: Any,
    *,
    backend: str = "auto",
    block_m: int | None = None,
    tile_n: int | None = None,
    split_tokens: int | None = None,
    num_sms: int | None = None,
    validate: bool | str = "metadata",
) -> UnifiedPlan:
    """Read and check a batch layout once; the returned plan's ``run`` serves every layer.

    ``query`` ``[num_tokens, num_heads, head_dim]`` and ``key_cache`` ``[num_blocks,
    block_size, num_kv_heads, head_dim]`` give shapes, dtypes and the device (any layer's
    tensors of those shapes may be passed to ``run``). ``query_start_loc`` ``[num_seqs + 1]``
    and ``seq_lens`` ``[num_seqs]`` are read on the host here (a device tensor is copied,
    which synchronises: do it once per step, before any CUDA-graph capture).
    ``validate="full"`` also reads a device ``block_table`` back (a second synchronisation)
    to check every block id a sequence reads; the default, ``"metadata"`` (as
    ``plan_decode``), checks the lengths, which are read anyway, and shapes/dtypes/devices.
    Host arrays are always checked in full. ``block_m`` (16/32/64/128) forces one tile
    height for every sequence, ``tile_n`` the keys per tile (triton; tests and sweeps).
    ``split_tokens`` pins the keys per split of decode/verification items (0: never split;
    None: split only batches too small to fill the device, ``plan.split_work``) and
    ``num_sms`` the SM count that rule assumes (default: the device's).
    """
    q = describe(query, "query")
    kc = describe(key_cache, "key_cache")
    bt = describe(block_table, "block_table")
    qsl = describe(query_start_loc, "query_start_loc")
    sl = describe(seq_lens, "seq_lens")
    _same_place([q, kc, bt, qsl, sl])
    cache = check_caches(key_cache, key_cache, None, None, validate=True)
    if len(q.shape) != 3:
        raise KernelInputError(
            f"query must be 3-D [num_tokens, num_heads, head_dim], got {q.shape}"
        )
    num_tokens, num_heads, head_dim = q.shape
    if head_dim != cache.head_dim:
        raise KernelInputError(f"query head_dim={head_dim} must equal key_cache's {cache.head_dim}")
    if num_heads < 1 or num_heads % cache.num_kv_heads:
        raise KernelInputError(
            f"num_heads={num_heads} (query) must be a positive multiple of "
            f"num_kv_heads={cache.num_kv_heads} (key_cache)"
        )
    if len(bt.shape) != 2 or not bt.is_int:
        raise KernelInputError(
            "block_table must be 2-D integers [num_seqs, max_blocks_per_seq], "
            f"got {bt.shape} {bt.kind}"
        )
    num_seqs = bt.shape[0]
    _int_vector(qsl, num_seqs + 1, "[num_seqs + 1]")
    _int_vector(sl, num_seqs, "[num_seqs]")
    if block_m is not None and block_m not in (16, 32, 64, 128):
        raise KernelInputError(f"block_m must be 16, 32, 64 or 128 (or None), got {block_m!r}")
    if tile_n is not None and (isinstance(tile_n, bool) or tile_n not in (16, 32, 64, 128)):
        raise KernelInputError(f"tile_n must be 16, 32, 64 or 128 (or None), got {tile_n!r}")
    for name, value in (("split_tokens", split_tokens), ("num_sms", num_sms)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or value < 0
        ):
            raise KernelInputError(f"{name} must be an int >= 0 (or None), got {value!r}")
    if num_sms == 0:
        raise KernelInputError("num_sms must be >= 1")
    full = validate_mode(validate)
    chosen = _resolve(backend, q)
    batch = varlen_batch(_to_host(qsl), _to_host(sl), num_tokens)
    if full or bt.host is not None:
        check_table_values(cache, bt, sl)
    common: dict[str, Any] = dict(
        backend=chosen, batch=batch, num_tokens=num_tokens, num_heads=num_heads,
        num_kv_heads=cache.num_kv_heads, head_dim=head_dim, block_size=cache.block_size,
        num_blocks=cache.num_blocks, framework=q.framework, device=q.device,
        block_table=block_table, tile_n=tile_n,
    )  # fmt: skip
    group = num_heads // cache.num_kv_heads
    if chosen == "numba":
        from paged_attn_kernels.unified.numba_backend import work_items

        return UnifiedPlan(**common, items=work_items(batch, cache.num_kv_heads))
    if chosen == "numpy":
        return UnifiedPlan(**common)
    import torch

    from paged_attn_kernels.unified.triton_run import head_pad, launch_shape

    if q.kind == dt.FLOAT64:
        raise KernelDtypeError("backend='triton' computes in float32/float16/bfloat16, not float64")
    dev = query.device
    elem = key_cache.element_size()
    if num_sms is None:
        cuda = dev.type == "cuda"
        num_sms = torch.cuda.get_device_properties(dev).multi_processor_count if cuda else 132
    launches = []
    for lw in split_work(
        batch, group, cache.num_kv_heads, block_m, num_sms=num_sms, split_tokens=split_tokens
    ):
        shape = launch_shape(lw.block_m, group, head_dim, elem, tile_n)
        merge = None
        if lw.groups is not None:
            rows = lw.work.shape[0] * cache.num_kv_heads * lw.block_m
            merge = (
                torch.from_numpy(lw.groups).to(dev),
                torch.empty((rows, head_pad(head_dim)), dtype=torch.float32, device=dev),
                torch.empty(rows, dtype=torch.float32, device=dev),
            )
        launches.append((shape, torch.from_numpy(lw.work).to(dev), merge))
    return UnifiedPlan(
        **common,
        query_start_loc=torch.from_numpy(batch.query_start_loc.astype(np.int32)).to(dev),
        seq_lens=torch.from_numpy(batch.seq_lens.astype(np.int32)).to(dev),
        launches=tuple(launches),
    )


def _check_run(plan: UnifiedPlan, q: Arr, kc: Arr, vc: Arr, o: Arr | None) -> None:
    _same_place([q, kc, vc] + ([o] if o is not None else []))
    if q.framework != plan.framework or q.device != plan.device:
        raise KernelDtypeError(
            f"the plan was made for {plan.framework} arrays on {plan.device}, query is "
            f"{q.framework} on {q.device}"
        )
    want_q = (plan.num_tokens, plan.num_heads, plan.head_dim)
    if q.shape != want_q:
        raise KernelInputError(f"query must be {list(want_q)} as planned, got {list(q.shape)}")
    want_c = (plan.num_blocks, plan.block_size, plan.num_kv_heads, plan.head_dim)
    for c in (kc, vc):
        if c.shape != want_c:
            raise KernelInputError(
                f"{c.name} must be {list(want_c)} as planned, got {list(c.shape)}"
            )
    if q.kind not in dt.FLOAT_KINDS and q.kind != dt.BFLOAT16:
        raise KernelDtypeError(f"query dtype {q.kind} must be float16/bfloat16/float32/float64")
    if o is not None and (o.shape != q.shape or o.kind != q.kind):
        raise KernelDtypeError(
            f"out must have query's shape {q.shape} and dtype {q.kind}, got {o.shape} {o.kind}"
        )


def run_plan(
    plan: UnifiedPlan,
    query: Any,
    key_cache: Any,
    value_cache: Any,
    *,
    out: Any,
    scale: float | None,
    sliding_window: int | None,
    soft_cap: float | None,
    sinks: Any,
    alibi_slopes: Any,
    k_scale: Any,
    v_scale: Any,
) -> Any:
    """``UnifiedPlan.run``: metadata checks, then the backend."""
    if not isinstance(plan, UnifiedPlan):
        raise KernelInputError(f"plan must be a UnifiedPlan from plan_unified(), got {type(plan)}")
    if scale is None:
        scale = 1.0 / math.sqrt(plan.head_dim)
    elif isinstance(scale, bool) or not math.isfinite(float(scale)) or float(scale) == 0.0:
        raise KernelInputError(f"scale must be a finite non-zero float, got {scale!r}")
    if plan.backend == "triton":
        from paged_attn_kernels.unified.triton_run import check_torch_run, run_triton

        ks, vs = check_torch_run(plan, query, key_cache, value_cache, out, k_scale, v_scale)
        mods = make_mods(
            plan.num_heads, sliding_window=sliding_window, soft_cap=soft_cap, sinks=sinks,
            alibi_slopes=alibi_slopes, read_values=False,
        )  # fmt: skip
        return run_triton(plan, query, key_cache, value_cache, out, float(scale), mods, ks, vs)
    q = describe(query, "query")
    kc = describe(key_cache, "key_cache")
    vc = describe(value_cache, "value_cache")
    o = None if out is None else describe(out, "out")
    _check_run(plan, q, kc, vc, o)
    cache = check_caches(key_cache, value_cache, k_scale, v_scale, validate=True)
    if cache.kind != dt.FP8_E4M3 and q.kind != cache.kind:
        raise KernelDtypeError(
            f"query dtype {q.kind} must equal the cache dtype {cache.kind} (only fp8 caches mix)"
        )
    mods = make_mods(
        plan.num_heads, sliding_window=sliding_window, soft_cap=soft_cap, sinks=sinks,
        alibi_slopes=alibi_slopes,
    )  # fmt: skip
    ks, vs = float(cache.k_scale), float(cache.v_scale)
    bt = host_of(describe(plan.block_table, "block_table")).astype(np.int32, copy=False)
    kch, vch = host_of(cache.key_cache), host_of(cache.value_cache)
    qf = dt.decode(host_of(q), q.kind)
    if plan.backend == "numpy":
        from paged_attn_kernels.unified.reference import unified_reference

        result = unified_reference(
            np.asarray(qf, np.float64), kch, vch, bt, plan.batch, float(scale), cache.kind,
            mods, ks, vs,
        )  # fmt: skip
    else:
        from paged_attn_kernels.unified.numba_backend import unified_numba

        wide = dt.FLOAT64 in (q.kind, cache.kind)
        acc = np.float64 if wide else np.float32
        group = plan.num_heads // plan.num_kv_heads
        qs = (np.asarray(qf, acc) * acc(scale)).reshape(
            plan.num_tokens, plan.num_kv_heads, group, plan.head_dim
        )
        result = unified_numba(
            np.ascontiguousarray(qs), kch, vch, bt, plan.batch, cache.kind, mods, ks, vs,
            plan.items,
        ).reshape(q.shape)  # fmt: skip
    return to_float_output(result, q, out)


def unified_attention(
    query: Any,
    key_cache: Any,
    value_cache: Any,
    block_table: Any,
    query_start_loc: Any,
    seq_lens: Any,
    *,
    scale: float | None = None,
    sliding_window: int | None = None,
    soft_cap: float | None = None,
    sinks: Any = None,
    alibi_slopes: Any = None,
    k_scale: Any = None,
    v_scale: Any = None,
    out: Any = None,
    backend: str = "auto",
    validate: bool | str = "metadata",
) -> Any:
    """Variable-length attention over the paged cache: ``plan_unified(...).run(...)`` in one.

    ``query`` ``[num_tokens, num_heads, head_dim]``: sequence ``i``'s new tokens are rows
    ``query_start_loc[i]:query_start_loc[i+1]`` (rows past ``query_start_loc[-1]`` are
    padding and get zeros); ``seq_lens[i]`` = cached prefix + new tokens. Token ``j`` of
    sequence ``i`` sits at position ``seq_lens[i] - query_len + j`` and attends causally to
    keys ``0..`` its position, through ``block_table[i]``. Modifiers (``options.py``):
    ``sliding_window`` (tokens, itself included), ``soft_cap``, ``sinks`` and
    ``alibi_slopes`` (``[num_heads]`` floats). ``scale`` defaults to ``1/sqrt(head_dim)``;
    fp8 caches take ``k_scale``/``v_scale``. Returns ``out`` or a new array like ``query``.

    This reads the layout on the host (a synchronisation for device tensors); an engine
    makes one plan per step with ``plan_unified`` and calls ``plan.run`` per layer.
    """
    plan = plan_unified(
        query, key_cache, block_table, query_start_loc, seq_lens,
        backend=backend, validate=validate,
    )  # fmt: skip
    return plan.run(
        query, key_cache, value_cache, out=out, scale=scale, sliding_window=sliding_window,
        soft_cap=soft_cap, sinks=sinks, alibi_slopes=alibi_slopes, k_scale=k_scale,
        v_scale=v_scale,
    )  # fmt: skip
