"""Public API of the paged data path: write K/V through ``slot_mapping``, read it back
through ``block_table``, and decode attention over it, on one of three backends.

Mirrors vLLM's ``reshape_and_cache_flash`` (csrc/cache_kernels.cu) for the write and
``paged_attention_v1/v2`` (csrc/attention/) for the read, in vLLM's flash layout: caches
``[num_blocks, block_size, num_kv_heads, head_dim]``. Every call validates its inputs
(``_validate.py``) before any backend runs, then dispatches:

- ``numpy``: the float64 oracle (``_reference.py``);
- ``numba``: parallel CPU kernels (``_numba.py``);
- ``triton``: GPU kernels (``_triton_decode.py``, ``_triton_write.py``), imported lazily.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import numpy.typing as npt

from paged_attn_kernels import _dtypes as dt
from paged_attn_kernels import _one_shot
from paged_attn_kernels import _reference as ref
from paged_attn_kernels import _torch_path as tp
from paged_attn_kernels._arrays import Arr, describe, host_of, to_float_output
from paged_attn_kernels._slots import slot_mapping
from paged_attn_kernels._validate import (
    CacheInfo,
    KernelDtypeError,
    KernelInputError,
    check_attention,
    check_backend,
    check_caches,
    check_gather,
    check_write,
)
from paged_attn_kernels._validate import _to_host as _to_host
from paged_attn_kernels.decode_plan import DecodePlan, plan_decode, validate_mode

__all__ = [
    "available_backends",
    "copy_blocks",
    "dense_attention_reference",
    "gather_kv",
    "paged_attention",
    "plan_decode",
    "slot_mapping",
    "write_kv_cache",
]

_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, RuntimeWarning, stacklevel=3)


def _numba_available() -> bool:
    try:
        from paged_attn_kernels import _numba  # noqa: F401
    except ImportError:
        return False
    return True


def _triton_available() -> bool:
    try:
        import torch  # noqa: F401
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def available_backends() -> tuple[str, ...]:
    """Backends that can run here: numpy always; numba if installed; triton with CUDA or
    under ``TRITON_INTERPRET=1``."""
    names = ["numpy"]
    if _numba_available():
        names.append("numba")
    if _triton_available() and (tp.cuda_available() or tp.interpreting()):
        names.append("triton")
    return tuple(names)


def _resolve(backend: str, first: Arr) -> str:
    check_backend(backend)
    on_gpu = first.device != "cpu"
    if backend == "auto":
        backend = "triton" if on_gpu else "numba"
    if backend in ("numpy", "numba") and on_gpu:
        raise KernelDtypeError(
            f"backend={backend!r} runs on host memory but {first.name} is on {first.device}; "
            "use backend='triton' (or 'auto') or move the tensors with .cpu()"
        )
    if backend == "numba" and not _numba_available():
        _warn_once(
            "numba",
            "numba is not installed: paged_attn_kernels falls back to the slow numpy "
            "reference (pip install 'paged-attn-kernels[numba]')",
        )
        return "numpy"
    if backend == "triton":
        if not _triton_available():
            raise ImportError(
                "backend='triton' needs torch and triton: pip install 'paged-attn-kernels[triton]'"
            )
        if (
            not on_gpu
            and not tp.interpreting()
            and (first.framework == "torch" or not tp.cuda_available())
        ):
            raise KernelDtypeError(
                f"backend='triton' needs CUDA tensors, {first.name} is on {first.device} "
                "(or TRITON_INTERPRET=1 set before the first import of paged_attn_kernels' "
                "Triton modules, for the slow interpreter); numpy arrays are copied to CUDA"
            )
    return backend


def _float_host(a: Arr, scale: float = 1.0) -> npt.NDArray[np.floating[Any]]:
    return dt.decode(host_of(a), a.kind, scale)


# ---------------------------------------------------------------- write


def write_kv_cache(
    key: Any,
    value: Any,
    key_cache: Any,
    value_cache: Any,
    slot_mapping: Any,
    backend: str = "auto",
    k_scale: Any = None,
    v_scale: Any = None,
    *,
    validate: bool = True,
) -> None:
    """Store ``key``/``value`` ``[num_tokens, num_kv_heads, head_dim]`` in the caches at
    ``slot_mapping`` (vLLM's ``reshape_and_cache``); negative slots are padding.

    fp8 caches (torch ``float8_e4m3fn``, ml_dtypes ``float8_e4m3fn`` or ``uint8`` bits) store
    ``e4m3(clamp(x / scale, -448, 448))``. Slots are checked to lie in the cache and to be
    distinct (for CUDA tensors only with ``validate=True``); nothing is written when a check
    fails.
    """
    call = check_write(
        key, value, key_cache, value_cache, slot_mapping,
        k_scale=k_scale, v_scale=v_scale, validate=validate,
    )  # fmt: skip
    if call.key.shape[0] == 0:
        return
    chosen = _resolve(backend, call.cache.key_cache)
    if chosen == "triton":
        tp.write_triton(call.key, call.value, call.cache, call.slot_mapping)
        return
    cache = call.cache
    key_store = _storage_form(call.key, cache, float(cache.k_scale))
    value_store = _storage_form(call.value, cache, float(cache.v_scale))
    slots = host_of(call.slot_mapping).astype(np.int64, copy=False)
    kc, vc = host_of(cache.key_cache), host_of(cache.value_cache)
    if chosen == "numba":
        from paged_attn_kernels import _numba

        _numba.write(key_store, value_store, kc, vc, slots)
    else:
        ref.write_kv_cache_reference(key_store, value_store, kc, vc, slots)


def _storage_form(x: Arr, cache: CacheInfo, scale: float) -> npt.NDArray[Any]:
    if cache.kind == dt.FP8_E4M3:
        return dt.encode_fp8_e4m3(_float_host(x), scale)
    return host_of(x)  # same kind as the cache (checked)


def copy_blocks(key_cache: Any, value_cache: Any, block_mapping: Any) -> None:
    """Copy whole blocks ``src -> dst`` in both caches (vLLM's ``copy_blocks``): the copies
    that copy-on-write owes before a forked sequence writes into a block it shared, as
    returned by ``KVCacheManager.take_blocks_to_copy()``.

    ``block_mapping`` is a sequence of ``(src, dst)`` pairs or an ``[n, 2]`` integer array.
    All sources are read before any destination is written; destinations must be distinct.
    Ids are checked on the host; a CUDA ``block_mapping`` is used as is (no synchronisation).
    """
    cache = check_caches(key_cache, value_cache, None, None, validate=True)
    if isinstance(block_mapping, (list, tuple)):
        block_mapping = np.asarray(block_mapping, dtype=np.int64).reshape(-1, 2)
    pairs = describe(block_mapping, "block_mapping")
    if len(pairs.shape) != 2 or pairs.shape[1] != 2 or not pairs.is_int:
        raise KernelInputError(f"block_mapping must be [n, 2] integer pairs, got {pairs.shape}")
    host: npt.NDArray[Any] | None = None  # the pairs, when they are on the host
    if pairs.framework == "numpy" or pairs.device == "cpu":
        host = tp.host_bits(pairs.value) if pairs.framework == "torch" else pairs.value
        bad = (host < 0) | (host >= cache.num_blocks)
        if bad.any():
            i, j = (int(v) for v in np.argwhere(bad)[0])
            raise KernelInputError(
                f"block_mapping[{i}, {j}]={int(host[i, j])} is outside "
                f"[0, {cache.num_blocks - 1}] (num_blocks={cache.num_blocks})"
            )
        if len(set(host[:, 1].tolist())) != host.shape[0]:
            raise KernelInputError("block_mapping has a destination block more than once")
    if cache.key_cache.framework == "torch":
        import torch

        kc, vc = cache.key_cache.value, cache.value_cache.value
        on_triton = kc.device.type == "cuda" or tp.interpreting()
        if (
            host is not None
            and on_triton
            and kc[0].is_contiguous()
            and vc[0].is_contiguous()
            and kc.stride(0) == vc.stride(0)
            and not np.intersect1d(host[:, 0], host[:, 1]).size
        ):
            # one Triton launch for both caches (6.5x torch indexing on an H100, docs/UNIFIED.md);
            # a block that is both a source and a destination needs the read-all-first
            # order of the indexing path below
            from paged_attn_kernels.cache_ops.triton_kernels import copy_blocks_triton

            copy_blocks_triton(kc, vc, torch.as_tensor(host, device=kc.device))
            return
        idx = torch.as_tensor(pairs.value, device=cache.key_cache.value.device).long()
        for c in (key_cache, value_cache):
            bits = c.view(torch.uint8) if c.element_size() == 1 else c
            bits[idx[:, 1]] = bits[idx[:, 0]]
        return
    if host is None:
        raise KernelDtypeError(f"block_mapping is on {pairs.device} but the caches are numpy")
    src, dst = host[:, 0], host[:, 1]
    for a in (cache.key_cache, cache.value_cache):
        arr = host_of(a)
        arr[dst] = arr[src]  # the right side is gathered (copied) first


# ---------------------------------------------------------------- gather


def gather_kv(
    key_cache: Any,
    value_cache: Any,
    block_table: Any,
    seq_lens: Any,
    *,
    max_seq_len: int | None = None,
    backend: str = "auto",
    k_scale: Any = None,
    v_scale: Any = None,
    out: tuple[Any, Any] | None = None,
    validate: bool = True,
) -> tuple[Any, Any]:
    """Read each sequence's K and V through its ``block_table`` row (the read-map).

    Returns dense ``[num_seqs, max_seq_len, num_kv_heads, head_dim]`` K and V in the cache
    dtype (fp8 caches: float32, multiplied by their scales); positions at or past a
    sequence's length are zero. ``max_seq_len`` defaults to the block table's capacity
    (``max_blocks_per_seq * block_size``), which needs no look at ``seq_lens``. ``out``, a
    (key, value) pair of host arrays of that shape, the caches' type and dtype (non-fp8
    caches, numpy/numba backends), is filled instead of allocating.
    """
    call = check_gather(
        key_cache, value_cache, block_table, seq_lens,
        k_scale=k_scale, v_scale=v_scale, max_seq_len=max_seq_len, validate=validate,
    )  # fmt: skip
    cache = call.cache
    chosen = _resolve(backend, cache.key_cache)
    if chosen == "triton":
        return tp.gather_torch(call.cache, call.block_table, call.seq_lens, call.max_seq_len)
    bt = host_of(call.block_table).astype(np.int32, copy=False)
    sl = host_of(call.seq_lens).astype(np.int32, copy=False)
    kc, vc = host_of(cache.key_cache), host_of(cache.value_cache)
    if out is not None:
        shape = (bt.shape[0], call.max_seq_len, cache.num_kv_heads, cache.head_dim)
        if cache.kind == dt.FP8_E4M3:
            raise KernelInputError("gather_kv(out=...) is not available for fp8 caches")
        described = [describe(o, "out") for o in out]
        for o in described:
            if o.framework != cache.key_cache.framework or o.shape != shape or o.kind != cache.kind:
                raise KernelDtypeError(
                    f"out arrays must be {cache.key_cache.framework} {shape} {cache.kind} "
                    f"like the caches, got {o.framework} {o.shape} {o.kind}"
                )
        given = out
        out = (host_of(described[0]), host_of(described[1]))
    if chosen == "numba":
        from paged_attn_kernels import _numba

        k, v = _numba.gather(kc, vc, bt, sl, call.max_seq_len, out)
    elif out is not None:
        out[0][...] = ref.gather_reference(kc, bt, sl, call.max_seq_len)
        out[1][...] = ref.gather_reference(vc, bt, sl, call.max_seq_len)
    else:
        k = ref.gather_reference(kc, bt, sl, call.max_seq_len)
        v = ref.gather_reference(vc, bt, sl, call.max_seq_len)
    if out is not None:
        return given
    return (
        _gathered(k, cache.key_cache, float(cache.k_scale), chosen),
        _gathered(v, cache.value_cache, float(cache.v_scale), chosen),
    )


def _gathered(raw: npt.NDArray[Any], like: Arr, scale: float, backend: str) -> Any:
    kind = dt.FP8_E4M3 if like.kind == "uint8" else like.kind
    if kind == dt.FP8_E4M3:
        table = dt.E4M3_TABLE * np.float32(scale)
        if backend == "numba":
            from paged_attn_kernels import _numba

            values: Any = _numba.lookup(raw, table)
        else:
            values = table[raw]
    elif kind == dt.BFLOAT16:
        values = raw if like.framework == "torch" else raw.view(like.value.dtype)
    else:
        values = raw
    if like.framework != "torch":
        return values
    import torch

    t = torch.from_numpy(np.ascontiguousarray(values))
    return t.view(torch.int16).view(torch.bfloat16) if kind == dt.BFLOAT16 else t


# ---------------------------------------------------------------- attention


def paged_attention(
    query: Any,
    key_cache: Any,
    value_cache: Any,
    block_table: Any,
    seq_lens: Any,
    scale: float | None = None,
    backend: str = "auto",
    out: Any = None,
    *,
    k_scale: Any = None,
    v_scale: Any = None,
    num_splits: int | None = None,
    plan: DecodePlan | None = None,
    validate: bool | str = "metadata",
) -> Any:
    """Decode attention of one query token per sequence over the paged K/V cache.

    ``query`` ``[num_seqs, num_heads, head_dim]``; caches ``[num_blocks, block_size,
    num_kv_heads, head_dim]``; ``block_table`` ``[num_seqs, max_blocks_per_seq]`` (entries
    past a sequence's blocks are never read); ``seq_lens`` ``[num_seqs]``. Query head ``h``
    attends KV head ``h // (num_heads // num_kv_heads)``. ``scale`` defaults to
    ``1/sqrt(head_dim)``. A sequence of length 0 gets a zero row. Returns ``out`` (written
    in full) or a new array of query's type, dtype and device.

    This one-shot call suits scripts and tests. An engine that runs many layers per step
    should make a :func:`plan_decode` once per step and call ``plan.run`` per layer: the
    split choice and the work list are then made once, from the real lengths.

    ``validate="metadata"`` (the default) checks shapes, dtypes and devices; it reads no
    device memory, so the call can be captured in a CUDA graph and costs tens of
    microseconds on the host. ``validate="full"`` also reads ``block_table``/``seq_lens``
    values back (a synchronisation on CUDA) and checks every block id a sequence reads and
    every length; without it, out-of-range values on a device are undefined behaviour, as
    in vLLM. Host arrays (numpy/numba backends) are always checked in full.

    ``num_splits`` forces the number of context splits of the Triton launch; ``plan`` (from
    :func:`plan_decode`) launches the plan's work list over this call's tensors.
    """
    key = None
    if plan is None and (validate is False or validate == "metadata"):
        # a repeat of a signature checked before: memoised checks, cached launcher
        key = _one_shot.fast_key(
            query, key_cache, value_cache, block_table, seq_lens, scale, out, k_scale, v_scale,
            num_splits, backend,
        )  # fmt: skip
        if key is not None:
            done = _one_shot.launch_memoised(
                key, query, key_cache, value_cache, block_table, seq_lens, out, k_scale, v_scale
            )
            if done is not None:
                return done
    full = validate_mode(validate)
    call = check_attention(
        query, key_cache, value_cache, block_table, seq_lens,
        scale=scale, out=out, k_scale=k_scale, v_scale=v_scale, validate=full,
    )  # fmt: skip
    if num_splits is not None and (
        isinstance(num_splits, bool) or not isinstance(num_splits, int) or num_splits < 1
    ):
        raise KernelInputError(f"num_splits must be an int >= 1 or None, got {num_splits}")
    if backend == "triton" and call.query.kind == dt.FLOAT64:
        # A dtype the backend can never run: say so before any device question.
        raise KernelDtypeError(
            "backend='triton' computes in float32/float16/bfloat16; float64 inputs "
            "need backend='numpy' or 'numba'"
        )
    chosen = _resolve(backend, call.query)
    cache = call.cache
    if plan is not None:
        _check_plan(plan, call, chosen, num_splits, full)
    if chosen == "triton":
        if call.query.kind == dt.FLOAT64:
            raise KernelDtypeError(
                "backend='auto' chose triton for CUDA tensors, which computes in "
                "float32/float16/bfloat16; float64 inputs need host arrays and "
                "backend='numpy' or 'numba'"
            )
        result = tp.attention_triton(call, out, num_splits, plan)
        if key is not None:
            _one_shot.remember(key, call, num_splits, k_scale, v_scale)
        return result
    bt = host_of(call.block_table).astype(np.int32, copy=False)
    sl = host_of(call.seq_lens).astype(np.int32, copy=False)
    kc, vc = host_of(cache.key_cache), host_of(cache.value_cache)
    if chosen == "numpy":
        result = ref.paged_attention_reference(
            _float_host(call.query).astype(np.float64), kc, vc, bt, sl, call.scale,
            cache.kind, float(cache.k_scale), float(cache.v_scale),
        )  # fmt: skip
    else:
        from paged_attn_kernels import _numba

        acc_dtype = np.float64 if dt.FLOAT64 in (call.query.kind, cache.kind) else np.float32
        q = _float_host(call.query).astype(acc_dtype) * acc_dtype(call.scale)
        q = np.ascontiguousarray(
            q.reshape(call.num_seqs, cache.num_kv_heads, call.queries_per_kv, cache.head_dim)
        )
        if cache.kind in dt.FLOAT_KINDS and kc.dtype != acc_dtype and acc_dtype == np.float64:
            kc, vc = kc.astype(np.float64), vc.astype(np.float64)
        result = _numba.decode(
            q, kc, vc, bt, sl, cache.kind, float(cache.k_scale), float(cache.v_scale), num_splits
        ).reshape(call.query.shape)
    return to_float_output(result, call.query, out)


def _check_plan(plan: object, call: Any, backend: str, num_splits: int | None, full: bool) -> None:
    if not isinstance(plan, DecodePlan):
        raise KernelInputError(f"plan must be a DecodePlan from plan_decode(), got {type(plan)}")
    if backend != "triton":
        raise KernelInputError(f"plan is a launch of the triton backend; backend is {backend!r}")
    if num_splits is not None:
        raise KernelInputError("pass num_splits or plan, not both: the plan fixes the splits")
    shape = (call.num_seqs, call.num_heads, call.cache.head_dim)
    if (plan.num_seqs, plan.num_heads, plan.head_dim) != shape or (
        plan.num_kv_heads != call.cache.num_kv_heads or plan.block_size != call.cache.block_size
    ):
        raise KernelInputError(
            f"plan was made for query {(plan.num_seqs, plan.num_heads, plan.head_dim)} and "
            f"{plan.num_kv_heads} KV heads of {plan.block_size}-token blocks; the call has "
            f"{shape} and {call.cache.num_kv_heads} of {call.cache.block_size}"
        )
    if full:  # reads device lengths back, as check_attention's value checks do
        covered = plan.covered_tokens()
        lens = _to_host(call.seq_lens).astype(np.int64)
        over = np.nonzero(lens > covered)[0]
        if over.size:
            s = int(over[0])
            raise KernelInputError(
                f"seq_lens[{s}] = {int(lens[s])} is longer than the plan covers "
                f"({int(covered[s])} tokens): make a new plan with plan_decode()"
            )


# ---------------------------------------------------------------- dense reference


def dense_attention_reference(
    query: Any,
    key: Any,
    value: Any,
    seq_lens: Any = None,
    scale: float | None = None,
) -> npt.NDArray[np.float64]:
    """Plain softmax attention over contiguous K/V, in float64 (the paged kernels' target).

    ``query`` ``[num_seqs, num_heads, head_dim]``; ``key``/``value`` ``[num_seqs, max_seq_len,
    num_kv_heads, head_dim]`` (e.g. from :func:`gather_kv`); ``seq_lens`` defaults to
    ``max_seq_len`` for every sequence. Returns a float64 numpy array.
    """
    q, k, v = describe(query, "query"), describe(key, "key"), describe(value, "value")
    for a, ndim in ((q, 3), (k, 4), (v, 4)):
        if len(a.shape) != ndim:
            raise KernelInputError(f"{a.name} must be {ndim}-D, got shape {a.shape}")
    if k.shape != v.shape or k.shape[0] != q.shape[0] or k.shape[3] != q.shape[2]:
        raise KernelInputError(
            f"key {k.shape} and value {v.shape} must be [num_seqs={q.shape[0]}, max_seq_len, "
            f"num_kv_heads, head_dim={q.shape[2]}]"
        )
    if k.shape[2] < 1 or q.shape[1] % k.shape[2]:
        raise KernelInputError(
            f"num_heads={q.shape[1]} must be a multiple of num_kv_heads={k.shape[2]}"
        )
    if seq_lens is None:
        lens = np.full(q.shape[0], k.shape[1], dtype=np.int64)
    else:
        lens = np.asarray(_from_host_any(describe(seq_lens, "seq_lens"))).astype(np.int64)
        if lens.shape != (q.shape[0],) or (lens < 0).any() or (lens > k.shape[1]).any():
            raise KernelInputError(
                f"seq_lens must be [num_seqs={q.shape[0]}] with values in [0, {k.shape[1]}]"
            )
    if scale is None:
        scale = 1.0 / float(np.sqrt(q.shape[2]))

    def f64(a: Arr) -> npt.NDArray[np.float64]:
        kind = dt.FP8_E4M3 if a.kind == "uint8" else a.kind
        return np.asarray(dt.decode(_from_host_any(a), kind), dtype=np.float64)

    return ref.dense_attention(f64(q), f64(k), f64(v), lens, float(scale))


def _from_host_any(a: Arr) -> npt.NDArray[Any]:
    return a.host if a.host is not None else tp.host_bits(a.value)
