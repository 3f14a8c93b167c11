"""Test cases built the way a server builds them (Phase 02 lab-06's setup).

A ``KVCacheManager`` from block-allocator hands out blocks to real sequences while noise
requests come and go, so the real sequences' blocks end up scattered and out of order in
the physical cache. Tokens are written chunk by chunk through the manager's
``slot_mapping`` with ``write_kv_cache``; everything the kernels must never read (unowned
blocks, freed noise blocks, slots past ``seq_len``, block-table padding) holds NaN/inf.
The dense K/V kept alongside hold exactly the values as stored, in float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from block_allocator import KVCacheManager, Request, pad_block_tables
from paged_attn_kernels import decode_bf16, decode_fp8_e4m3, encode_bf16, encode_fp8_e4m3

STORAGE = ("float64", "float32", "float16", "bfloat16", "fp8")
POISON = np.array([np.nan, np.inf, -np.inf, 3.0e38])


@dataclass
class Case:
    query: Any  # [num_seqs, num_heads, head_dim]
    key_cache: Any  # [num_blocks, block_size, num_kv_heads, head_dim]
    value_cache: Any
    block_table: Any  # [num_seqs, max_blocks_per_seq] int32, padded with poisoned blocks
    seq_lens: Any  # [num_seqs] int32
    key: np.ndarray  # [num_seqs, max_seq_len, num_kv_heads, head_dim] float64, as stored
    value: np.ndarray
    storage: str
    k_scale: float | None = None
    v_scale: float | None = None

    @property
    def scale(self) -> float:
        return float(1.0 / np.sqrt(self.key.shape[-1]))


def _np_dtype(storage: str) -> Any:
    return {"float64": np.float64, "float32": np.float32, "float16": np.float16}.get(storage)


def _stored(x: np.ndarray, storage: str, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """(storage form, float64 value as read back) of float64 ``x``."""
    if storage == "bfloat16":
        bits = encode_bf16(x)
        return bits, decode_bf16(bits).astype(np.float64)
    if storage == "fp8":
        bits = encode_fp8_e4m3(x, scale)
        return bits, decode_fp8_e4m3(bits).astype(np.float64) * scale
    y = x.astype(_np_dtype(storage))
    return y, y.astype(np.float64)


def _poison_like(shape: tuple[int, ...], storage: str, rng: np.random.Generator) -> np.ndarray:
    values = rng.choice(POISON, size=shape)
    if storage == "fp8":
        return np.full(shape, 0x7F, np.uint8)  # e4m3fn has NaN but no infinity
    if storage == "bfloat16":
        return encode_bf16(values)
    with np.errstate(over="ignore"):
        return values.astype(_np_dtype(storage))


def allocator_case(
    seed: int,
    seq_lens: list[int],
    num_heads: int,
    num_kv_heads: int,
    head_dim: int,
    block_size: int,
    storage: str = "float64",
    *,
    pad_columns: int = 2,
    fp8_scales: tuple[float, float] = (0.02, 0.03),
) -> Case:
    rng = np.random.default_rng(seed)
    num_seqs = len(seq_lens)
    need = sum(-(-n // block_size) for n in seq_lens)
    num_blocks = need + 3 * max(4, need // 2) + 1  # room for noise, spare blocks, null block
    mgr = KVCacheManager(num_blocks, block_size, enable_caching=False)
    k_scale, v_scale = fp8_scales if storage == "fp8" else (1.0, 1.0)
    cache_shape = (num_blocks, block_size, num_kv_heads, head_dim)
    key_cache = _poison_like(cache_shape, storage, rng)
    value_cache = _poison_like(cache_shape, storage, rng)
    max_len = max([*seq_lens, 1])
    key = np.zeros((num_seqs, max_len, num_kv_heads, head_dim))
    value = np.zeros_like(key)
    reqs = [Request(f"seq{i}", list(range(max(n, 1)))) for i, n in enumerate(seq_lens)]
    noise: list[Request] = []
    todo = [i for i, n in enumerate(seq_lens) if n > 0]
    serial = 0
    while todo:
        if rng.random() < 0.5 or not noise:  # a noise request arrives and writes poison
            serial += 1
            length = int(rng.integers(1, 3 * block_size))
            junk = Request(f"noise{serial}", list(range(length)))
            if mgr.allocate_slots(junk, length) is not None:
                noise.append(junk)
                slots = np.array(mgr.slot_mapping(junk, length))
                bad = _poison_like((length, num_kv_heads, head_dim), storage, rng)
                _raw_write(key_cache, value_cache, slots, bad, bad)
        if noise and rng.random() < 0.5:  # a noise request finishes; its blocks go free
            mgr.free(noise.pop(int(rng.integers(len(noise)))))
        i = todo[int(rng.integers(len(todo)))]
        req = reqs[i]
        left = seq_lens[i] - req.num_computed_tokens
        n = 1 if rng.random() < 0.4 else int(rng.integers(1, left + 1))  # decode or prefill
        n = min(n, left)
        while mgr.allocate_slots(req, n) is None:
            mgr.free(noise.pop(0))
        slots = np.array(mgr.slot_mapping(req, n), dtype=np.int64)
        start = req.num_computed_tokens
        k_new, k_read = _stored(rng.standard_normal((n, num_kv_heads, head_dim)), storage, k_scale)
        v_new, v_read = _stored(rng.standard_normal((n, num_kv_heads, head_dim)), storage, v_scale)
        _raw_write(key_cache, value_cache, slots, k_new, v_new)
        key[i, start : start + n] = k_read
        value[i, start : start + n] = v_read
        req.num_computed_tokens += n
        if req.num_computed_tokens == seq_lens[i]:
            todo.remove(i)
    for junk in noise:
        mgr.free(junk)
    tables = [
        mgr.get_block_ids(r.request_id) if n > 0 else []
        for r, n in zip(reqs, seq_lens, strict=True)
    ]
    width = max(len(t) for t in tables) + pad_columns
    # pad with the null block (0, never allocated, poisoned) like vLLM
    block_table = np.array(pad_block_tables(tables, pad_id=0, width=width), dtype=np.int32)
    q = rng.standard_normal((num_seqs, num_heads, head_dim))
    query = q.astype(np.float32) if storage in ("fp8", "bfloat16") else q.astype(_np_dtype(storage))
    case = Case(
        query, key_cache, value_cache, block_table, np.array(seq_lens, np.int32),
        key, value, storage,
        k_scale if storage == "fp8" else None, v_scale if storage == "fp8" else None,
    )  # fmt: skip
    return to_torch(case) if storage == "bfloat16" else case


def _raw_write(kc: np.ndarray, vc: np.ndarray, slots: Any, k: np.ndarray, v: np.ndarray) -> None:
    """Plain scatter, independent of the code under test (used for setup only)."""
    block_size = kc.shape[1]
    kc[slots // block_size, slots % block_size] = k
    vc[slots // block_size, slots % block_size] = v


def to_torch(case: Case, device: str = "cpu") -> Case:
    """The same case as torch tensors (bfloat16 / float8_e4m3fn for bit-stored caches)."""
    torch = pytest.importorskip(
        "torch", reason="this case is built from torch tensors (bfloat16 has no numpy dtype); "
        "the numpy/numba paths without torch are covered by the other storages"
    )  # fmt: skip

    def conv(x: Any, storage: str | None = None) -> Any:
        if not isinstance(x, np.ndarray):
            return x.to(device)
        if storage == "bfloat16" and x.dtype == np.uint16:
            return torch.from_numpy(x.view(np.int16)).view(torch.bfloat16).to(device)
        if storage == "fp8" and x.dtype == np.uint8:
            return torch.from_numpy(x).view(torch.float8_e4m3fn).to(device)
        return torch.from_numpy(x).to(device)

    query = conv(case.query)
    if case.storage == "bfloat16" and isinstance(case.query, np.ndarray):
        query = query.to(torch.bfloat16)
    return Case(
        query,
        conv(case.key_cache, case.storage),
        conv(case.value_cache, case.storage),
        conv(case.block_table),
        conv(case.seq_lens),
        case.key,
        case.value,
        case.storage,
        case.k_scale,
        case.v_scale,
    )


def query_f64(case: Case) -> np.ndarray:
    q = case.query
    if isinstance(q, np.ndarray):
        return q.astype(np.float64)
    return q.detach().cpu().double().numpy()


def dense(case: Case) -> np.ndarray:
    """float64 softmax attention over the dense K/V as stored (no paging)."""
    from paged_attn_kernels import dense_attention_reference

    return dense_attention_reference(query_f64(case), case.key, case.value, case.seq_lens)


def as_f64(x: Any) -> np.ndarray:
    if isinstance(x, np.ndarray):
        return x.astype(np.float64)
    return x.detach().cpu().double().numpy()


def rel_err(out: Any, ref: np.ndarray) -> float:
    o = as_f64(out)
    return float(np.abs(o - ref).max() / max(np.abs(ref).max(), 1e-30))
