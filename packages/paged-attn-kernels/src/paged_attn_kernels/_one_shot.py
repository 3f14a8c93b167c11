"""The one-shot decode call's fast path: its checks and launch preparation, memoised.

``paged_attention(...)`` on CUDA tensors with the default ``validate="metadata"`` checks
only what the tensors' metadata (shapes, dtypes, devices, strides) and the scalar
arguments decide, and its launch policy (split choice, compile-time arguments) is a
function of the same things. An engine that calls it for every layer of every decode step
repeats one signature over and over, so the first call with a signature runs the full
check and preparation, and every repeat looks the prepared launch up: a dict lookup on a
tuple of metadata, then the launch through the compiled kernel's cached launcher, as
``DecodePlan.run`` launches (FlashInfer's "plan once, run per layer", done behind the
one-shot call's back for its shape).

What is memoised is decided only by the key, so a repeat is exactly as valid as its first
call: a signature that fails the check raises and is never stored. Calls that need a
conversion first (an int64 block table, a query with a head stride, numpy arrays, host
tensors unless the Triton interpreter runs them), ``validate="full"`` and ``plan=`` take
the checked path every time.
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["fast_key", "launch_memoised", "remember"]

# Entries are small (a grid, a dict of compile-time arguments, the compiled launchers); the
# bound only keeps a program that sweeps through many shapes from growing without end.
_MAX_ENTRIES = 512
_MEMO: dict[tuple[Any, ...], tuple[Any, ...]] = {}


def _tensor_key(t: Any) -> tuple[Any, ...]:
    return (t.shape, t.dtype, t.device, t.stride())


def fast_key(
    query: Any,
    key_cache: Any,
    value_cache: Any,
    block_table: Any,
    seq_lens: Any,
    scale: Any,
    out: Any,
    k_scale: Any,
    v_scale: Any,
    num_splits: Any,
    backend: str,
) -> tuple[Any, ...] | None:
    """The call's signature, or ``None`` when the call is not one the fast path serves."""
    torch = sys.modules.get("torch")
    if torch is None:
        return None
    tensor = torch.Tensor
    if not (
        type(query) is tensor
        and type(key_cache) is tensor
        and type(value_cache) is tensor
        and type(block_table) is tensor
        and type(seq_lens) is tensor
        # a device tensor (as ``_resolve`` tells them apart), or the interpreter's CPU run
        and (
            query.device.type != "cpu"
            or (backend == "triton" and os.environ.get("TRITON_INTERPRET") == "1")
        )
    ):
        return None
    if not (scale is None or type(scale) is float or type(scale) is int):
        return None
    scales: list[Any] = []
    for s in (k_scale, v_scale):
        if s is None or type(s) is float:
            scales.append(s)
        elif type(s) is tensor:
            scales.append(_tensor_key(s))
        else:
            return None
    return (
        backend, num_splits, scale, *scales,
        _tensor_key(query), _tensor_key(key_cache), _tensor_key(value_cache),
        _tensor_key(block_table), _tensor_key(seq_lens),
        None if out is None else _tensor_key(out),
    )  # fmt: skip


def remember(
    key: tuple[Any, ...], call: Any, num_splits: int | None, k_scale: Any, v_scale: Any
) -> None:
    """Store the prepared launch of a call that passed the full check (``call`` is its
    ``AttentionCall``; ``k_scale``/``v_scale`` as the caller passed them), if the kernel can
    take its tensors as they are."""
    import torch

    from paged_attn_kernels import _triton_decode as td

    q, cache = call.query.value, call.cache
    kc, vc, bt, sl = (
        cache.key_cache.value, cache.value_cache.value, call.block_table.value, call.seq_lens.value
    )  # fmt: skip
    out = call.out.value if call.out is not None else None
    scales = (cache.k_scale, cache.v_scale)
    for given, checked in zip((k_scale, v_scale), scales, strict=True):
        if isinstance(given, torch.Tensor) and checked is not given:
            return  # a host tensor's value was read and checked: a repeat must read it again
    head_dim = cache.head_dim
    slot_strides = (cache.num_kv_heads * head_dim, head_dim, 1)
    if (
        kc.dtype == torch.uint8
        or kc.stride()[1:] != slot_strides
        or vc.stride()[1:] != slot_strides
        or bt.dtype != torch.int32
        or bt.stride(1) != 1
        or sl.dtype != torch.int32
        or q.stride()[1:] != (head_dim, 1)
        or (out is not None and out.stride()[1:] != (head_dim, 1))
        or any(isinstance(s, torch.Tensor) and s.device != q.device for s in scales)
    ):
        return
    num_seqs, num_heads, _ = q.shape
    cache_tail = (cache.block_size, cache.num_kv_heads, head_dim)
    grid, meta = td._shape_launch(
        q.dtype, kc.dtype, num_seqs, num_heads, head_dim, bt.shape[1] * cache.block_size,
        cache_tail, q.device, num_splits,
    )  # fmt: skip
    if len(_MEMO) >= _MAX_ENTRIES:
        _MEMO.clear()
    # float scales are part of the key, so the checked values can be kept; tensors are the
    # caller's and are passed through on every call
    ks = cache.k_scale if not isinstance(cache.k_scale, torch.Tensor) else None
    vs = cache.v_scale if not isinstance(cache.v_scale, torch.Tensor) else None
    _MEMO[key] = (grid, meta, {}, call.scale, ks, vs, cache.num_kv_heads)


def launch_memoised(
    key: tuple[Any, ...],
    query: Any,
    key_cache: Any,
    value_cache: Any,
    block_table: Any,
    seq_lens: Any,
    out: Any,
    k_scale: Any,
    v_scale: Any,
) -> Any:
    """Launch a call whose signature was prepared before; ``None`` when it was not."""
    entry = _MEMO.get(key)
    if entry is None:
        return None
    from paged_attn_kernels import _triton_decode as td

    grid, meta, runners, scale, ks, vs, num_kv_heads = entry
    if out is None:
        out = query.new_empty(query.shape)
    partials, sems = td.split_buffers(meta, grid, query, num_kv_heads)
    return td.launch(
        meta, grid, query, key_cache, value_cache, block_table, seq_lens, out, partials, sems,
        scale, k_scale if ks is None else ks, v_scale if vs is None else vs, runners,
    )  # fmt: skip
