"""Input checks shared by every backend, run before any kernel touches memory.

Shapes, dtypes, devices and head grouping are checked from metadata alone. The value checks
(block ids in range, ``seq_lens`` within the block table, slots within the cache) must read
``block_table``/``seq_lens``/``slot_mapping``: on a CUDA tensor that copies them to the host
and synchronises, so ``validate=False`` skips exactly those reads for device tensors (CUDA
graph capture). Host arrays are checked either way: the checks cost little there, and numba
would otherwise read out of bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from paged_attn_kernels import _dtypes as dt
from paged_attn_kernels._arrays import Arr, describe

BACKENDS = ("auto", "numpy", "numba", "triton")


class KernelInputError(ValueError):
    """An argument of a paged-attention call is out of its allowed range."""


class KernelDtypeError(KernelInputError, TypeError):
    """An argument has the wrong dtype, array type or device."""


@dataclass(slots=True)
class CacheInfo:
    """What the pair (key_cache, value_cache) says about the paged layout."""

    key_cache: Arr
    value_cache: Arr
    kind: str  # storage kind: float16/32/64, bfloat16, fp8_e4m3
    num_blocks: int
    block_size: int
    num_kv_heads: int
    head_dim: int
    k_scale: Any  # float, or the caller's scale tensor (fp8 only); 1.0 otherwise
    v_scale: Any

    @property
    def num_slots(self) -> int:
        return self.num_blocks * self.block_size


@dataclass(slots=True)
class AttentionCall:
    query: Arr
    cache: CacheInfo
    block_table: Arr
    seq_lens: Arr
    out: Arr | None
    scale: float

    @property
    def num_seqs(self) -> int:
        return self.query.shape[0]

    @property
    def num_heads(self) -> int:
        return self.query.shape[1]

    @property
    def queries_per_kv(self) -> int:
        return self.num_heads // self.cache.num_kv_heads


@dataclass(slots=True)
class WriteCall:
    key: Arr
    value: Arr
    cache: CacheInfo
    slot_mapping: Arr


@dataclass(slots=True)
class GatherCall:
    cache: CacheInfo
    block_table: Arr
    seq_lens: Arr
    max_seq_len: int


def _fail(msg: str) -> KernelInputError:
    return KernelInputError(msg)


def _same_place(args: list[Arr]) -> None:
    first = args[0]
    for a in args[1:]:
        if a.framework != first.framework:
            raise KernelDtypeError(
                f"{a.name} is a {a.framework} array but {first.name} is a {first.framework} "
                "array; pass all arrays from one framework"
            )
        if a.device != first.device:
            raise KernelDtypeError(
                f"{a.name} is on {a.device} but {first.name} is on {first.device}; "
                "all tensors must be on one device"
            )


def _ndim(a: Arr, ndim: int, layout: str) -> None:
    if len(a.shape) != ndim:
        raise _fail(f"{a.name} must be {ndim}-D {layout}, got shape {a.shape}")


def _int_array(a: Arr) -> None:
    if not a.is_int:
        raise KernelDtypeError(f"{a.name} must hold integers (int32), got dtype {a.kind}")


def _scale_value(x: object, name: str, validate: bool) -> Any:
    if x is None:
        return 1.0
    if isinstance(x, (int, float, np.floating, np.integer)):
        value = float(x)
    else:
        arr = describe(x, name)
        if math.prod(arr.shape) != 1 or not arr.is_float:
            raise _fail(f"{name} must be a float or a one-element float array, got {arr.shape}")
        if arr.host is None and not validate:
            return x  # a device scalar, read by the GPU kernel itself
        value = float(np.asarray(arr.host if arr.host is not None else _to_host(arr)).ravel()[0])
    if not (math.isfinite(value) and value > 0):
        raise _fail(f"{name} must be a finite positive float, got {value}")
    return value


def _to_host(a: Arr) -> npt.NDArray[Any]:
    """Host copy of a small index array (synchronises a CUDA stream)."""
    if a.host is not None:
        return a.host
    return np.asarray(a.value.detach().cpu().numpy())


def check_caches(
    key_cache: object, value_cache: object, k_scale: object, v_scale: object, validate: bool
) -> CacheInfo:
    kc = describe(key_cache, "key_cache")
    vc = describe(value_cache, "value_cache")
    _same_place([kc, vc])
    layout = "[num_blocks, block_size, num_kv_heads, head_dim]"
    _ndim(kc, 4, layout)
    if vc.shape != kc.shape:
        raise _fail(f"value_cache shape {vc.shape} must equal key_cache shape {kc.shape}")
    kind = dt.FP8_E4M3 if kc.kind == "uint8" else kc.kind
    vkind = dt.FP8_E4M3 if vc.kind == "uint8" else vc.kind
    allowed = (*dt.FLOAT_KINDS, *dt.BITS_KINDS)
    if kind not in allowed:
        raise KernelDtypeError(f"key_cache dtype {kc.kind} is not one of {allowed} (uint8 = fp8)")
    if vkind != kind:
        raise KernelDtypeError(f"value_cache dtype {vc.kind} must equal key_cache dtype {kc.kind}")
    num_blocks, block_size, num_kv_heads, head_dim = kc.shape
    for dim, label in ((num_blocks, "num_blocks"), (block_size, "block_size")):
        if dim < 1:
            raise _fail(f"key_cache {label} must be >= 1, got {dim}")
    if num_kv_heads < 1 or head_dim < 1:
        raise _fail(f"key_cache num_kv_heads and head_dim must be >= 1, got {kc.shape}")
    if kind != dt.FP8_E4M3:
        for s, label in ((k_scale, "k_scale"), (v_scale, "v_scale")):
            if s is not None and not (isinstance(s, (int, float)) and float(s) == 1.0):
                raise _fail(f"{label} applies to fp8 caches only; cache dtype is {kind}")
    ks = _scale_value(k_scale, "k_scale", validate)
    vs = _scale_value(v_scale, "v_scale", validate)
    return CacheInfo(kc, vc, kind, num_blocks, block_size, num_kv_heads, head_dim, ks, vs)


def _check_table(cache: CacheInfo, block_table: Arr, seq_lens: Arr, num_seqs: int) -> None:
    _ndim(block_table, 2, "[num_seqs, max_blocks_per_seq]")
    _ndim(seq_lens, 1, "[num_seqs]")
    _int_array(block_table)
    _int_array(seq_lens)
    if block_table.shape[0] != num_seqs or seq_lens.shape[0] != num_seqs:
        raise _fail(
            f"block_table rows ({block_table.shape[0]}) and seq_lens length "
            f"({seq_lens.shape[0]}) must both equal num_seqs={num_seqs}"
        )


def check_table_values(cache: CacheInfo, block_table: Arr, seq_lens: Arr) -> None:
    """seq_lens within the table's capacity; every block id a sequence reads is in range."""
    bt = _to_host(block_table)
    sl = _to_host(seq_lens).astype(np.int64)
    capacity = bt.shape[1] * cache.block_size
    bad = np.flatnonzero((sl < 0) | (sl > capacity))
    if bad.size:
        i = int(bad[0])
        raise _fail(
            f"seq_lens[{i}]={int(sl[i])} is outside [0, {capacity}] "
            f"(block_table width {bt.shape[1]} x block_size {cache.block_size})"
        )
    blocks_used = -(-sl // cache.block_size)  # [num_seqs]
    used = np.arange(bt.shape[1])[None, :] < blocks_used[:, None]  # [num_seqs, max_blocks]
    out_of_range = used & ((bt < 0) | (bt >= cache.num_blocks))
    if out_of_range.any():
        i, j = (int(v) for v in np.argwhere(out_of_range)[0])
        raise _fail(
            f"block_table[{i}, {j}]={int(bt[i, j])} is outside [0, {cache.num_blocks - 1}] "
            f"(num_blocks={cache.num_blocks}); sequence {i} reads {int(blocks_used[i])} blocks"
        )


def check_attention(
    query: object,
    key_cache: object,
    value_cache: object,
    block_table: object,
    seq_lens: object,
    *,
    scale: float | None,
    out: object | None,
    k_scale: object,
    v_scale: object,
    validate: bool,
) -> AttentionCall:
    cache = check_caches(key_cache, value_cache, k_scale, v_scale, validate)
    q = describe(query, "query")
    bt = describe(block_table, "block_table")
    sl = describe(seq_lens, "seq_lens")
    o = None if out is None else describe(out, "out")
    _same_place([cache.key_cache, q, bt, sl] + ([o] if o is not None else []))
    _ndim(q, 3, "[num_seqs, num_heads, head_dim]")
    num_seqs, num_heads, head_dim = q.shape
    if q.kind not in dt.FLOAT_KINDS and q.kind != dt.BFLOAT16:
        raise KernelDtypeError(f"query dtype {q.kind} must be float16/bfloat16/float32/float64")
    if cache.kind != dt.FP8_E4M3 and q.kind != cache.kind:
        raise KernelDtypeError(
            f"query dtype {q.kind} must equal the cache dtype {cache.kind} (only fp8 caches mix)"
        )
    if head_dim != cache.head_dim:
        raise _fail(f"query head_dim={head_dim} must equal key_cache head_dim={cache.head_dim}")
    if num_heads < 1 or num_heads % cache.num_kv_heads:
        raise _fail(
            f"num_heads={num_heads} (query) must be a positive multiple of "
            f"num_kv_heads={cache.num_kv_heads} (key_cache) so query heads group over KV heads"
        )
    _check_table(cache, bt, sl, num_seqs)
    if o is not None and (o.shape != q.shape or o.kind != q.kind):
        raise KernelDtypeError(
            f"out must have query's shape {q.shape} and dtype {q.kind}, got {o.shape} {o.kind}"
        )
    if scale is None:
        scale = 1.0 / math.sqrt(head_dim)
    elif not math.isfinite(float(scale)) or float(scale) == 0.0:
        raise _fail(f"scale must be a finite non-zero float, got {scale}")
    if validate or bt.host is not None:
        check_table_values(cache, bt, sl)
    return AttentionCall(q, cache, bt, sl, o, float(scale))


def check_write(
    key: object,
    value: object,
    key_cache: object,
    value_cache: object,
    slot_mapping: object,
    *,
    k_scale: object,
    v_scale: object,
    validate: bool,
) -> WriteCall:
    cache = check_caches(key_cache, value_cache, k_scale, v_scale, validate)
    k = describe(key, "key")
    v = describe(value, "value")
    sm = describe(slot_mapping, "slot_mapping")
    _same_place([cache.key_cache, k, v, sm])
    _ndim(k, 3, "[num_tokens, num_kv_heads, head_dim]")
    if v.shape != k.shape:
        raise _fail(f"value shape {v.shape} must equal key shape {k.shape}")
    if k.shape[1:] != (cache.num_kv_heads, cache.head_dim):
        raise _fail(
            f"key shape {k.shape} must be [num_tokens, {cache.num_kv_heads}, {cache.head_dim}] "
            "to match key_cache"
        )
    for a in (k, v):
        if a.kind not in dt.FLOAT_KINDS and a.kind != dt.BFLOAT16:
            raise KernelDtypeError(f"{a.name} dtype {a.kind} must be a float dtype")
        if cache.kind != dt.FP8_E4M3 and a.kind != cache.kind:
            raise KernelDtypeError(
                f"{a.name} dtype {a.kind} must equal the cache dtype {cache.kind}"
            )
    _ndim(sm, 1, "[num_tokens]")
    _int_array(sm)
    if sm.shape[0] != k.shape[0]:
        raise _fail(f"slot_mapping length {sm.shape[0]} must equal num_tokens={k.shape[0]}")
    if validate or sm.host is not None:
        slots = _to_host(sm).astype(np.int64)
        too_big = np.flatnonzero(slots >= cache.num_slots)
        if too_big.size:
            t = int(too_big[0])
            raise _fail(
                f"slot_mapping[{t}]={int(slots[t])} is outside [-1, {cache.num_slots - 1}] "
                f"(num_blocks={cache.num_blocks} x block_size={cache.block_size}); "
                "negative slots are padding"
            )
        real = np.sort(slots[slots >= 0])
        dup = np.flatnonzero(real[1:] == real[:-1])
        if dup.size:
            raise _fail(
                f"slot_mapping writes slot {int(real[dup[0]])} more than once; "
                "each token needs its own slot"
            )
    return WriteCall(k, v, cache, sm)


def check_gather(
    key_cache: object,
    value_cache: object,
    block_table: object,
    seq_lens: object,
    *,
    k_scale: object,
    v_scale: object,
    max_seq_len: int | None,
    validate: bool,
) -> GatherCall:
    cache = check_caches(key_cache, value_cache, k_scale, v_scale, validate)
    bt = describe(block_table, "block_table")
    sl = describe(seq_lens, "seq_lens")
    _same_place([cache.key_cache, bt, sl])
    _check_table(cache, bt, sl, bt.shape[0] if len(bt.shape) == 2 else -1)
    capacity = bt.shape[1] * cache.block_size
    if max_seq_len is None:
        max_seq_len = capacity
    elif not 0 <= max_seq_len <= capacity:
        raise _fail(f"max_seq_len={max_seq_len} is outside [0, {capacity}] (block_table capacity)")
    if validate or bt.host is not None:
        check_table_values(cache, bt, sl)
        longest = int(_to_host(sl).max(initial=0))
        if longest > max_seq_len:
            raise _fail(f"max_seq_len={max_seq_len} is shorter than the longest seq_len={longest}")
    return GatherCall(cache, bt, sl, max_seq_len)


def check_backend(backend: str) -> None:
    if backend not in BACKENDS:
        raise _fail(f"backend={backend!r} is not one of {BACKENDS}")
