"""numpy backend: the oracle every other backend is tested against.

Paged decode attention walks each sequence's ``block_table`` row like vLLM's
``paged_attention_v2.cu``: the blocks of a 512-token partition are gathered together, scored
for all query heads of a KV head at once, and merged into a running (max, sum, acc) with
online softmax. Everything is computed in float64 whatever the storage dtype.
``dense_attention_reference`` is the plain softmax over contiguous K/V that paged results
must equal (the proof of Phase 02 lab-06).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from paged_attn_kernels import _dtypes as dt

PARTITION_TOKENS = 512  # as PARTITION_SIZE in vLLM's paged_attention_v2.cu

F64 = npt.NDArray[np.float64]


def _read(raw: npt.NDArray[Any], kind: str, scale: float) -> F64:
    return np.asarray(dt.decode(raw, kind, scale), dtype=np.float64)


def paged_attention_reference(
    query: F64,  # [num_seqs, num_heads, head_dim]
    key_cache: npt.NDArray[Any],  # [num_blocks, block_size, num_kv_heads, head_dim]
    value_cache: npt.NDArray[Any],
    block_table: npt.NDArray[np.integer[Any]],  # [num_seqs, max_blocks_per_seq]
    seq_lens: npt.NDArray[np.integer[Any]],  # [num_seqs]
    scale: float,
    kind: str,
    k_scale: float = 1.0,
    v_scale: float = 1.0,
) -> F64:
    num_seqs, num_heads, head_dim = query.shape
    block_size, num_kv_heads = key_cache.shape[1], key_cache.shape[2]
    group = num_heads // num_kv_heads
    blocks_per_part = max(1, PARTITION_TOKENS // block_size)
    out = np.zeros((num_seqs, num_heads, head_dim))
    for i in range(num_seqs):
        seq_len = int(seq_lens[i])
        if seq_len == 0:
            continue  # no keys: the output row is defined as zeros
        num_blocks = -(-seq_len // block_size)
        q = query[i].reshape(num_kv_heads, group, head_dim) * scale  # [kv_heads, group, d]
        m = np.full((num_kv_heads, group), -np.inf)
        l_sum = np.zeros((num_kv_heads, group))
        acc = np.zeros((num_kv_heads, group, head_dim))
        for first in range(0, num_blocks, blocks_per_part):
            ids = block_table[i, first : min(first + blocks_per_part, num_blocks)]
            num_tokens = min(seq_len, (first + len(ids)) * block_size) - first * block_size
            # only owned blocks are read, and slots past seq_len are cut before any arithmetic
            k = _read(key_cache[ids], kind, k_scale).reshape(-1, num_kv_heads, head_dim)
            v = _read(value_cache[ids], kind, v_scale).reshape(-1, num_kv_heads, head_dim)
            k, v = k[:num_tokens], v[:num_tokens]  # [tokens, kv_heads, d]
            s = np.einsum("hgd,thd->hgt", q, k)
            m_new = np.maximum(m, s.max(axis=-1))
            alpha = np.exp(m - m_new)
            p = np.exp(s - m_new[..., None])
            l_sum = l_sum * alpha + p.sum(axis=-1)
            acc = acc * alpha[..., None] + np.einsum("hgt,thd->hgd", p, v)
            m = m_new
        out[i] = (acc / l_sum[..., None]).reshape(num_heads, head_dim)
    return out


def dense_attention(
    query: F64,  # [num_seqs, num_heads, head_dim]
    key: F64,  # [num_seqs, max_seq_len, num_kv_heads, head_dim]
    value: F64,
    seq_lens: npt.NDArray[np.integer[Any]],
    scale: float,
) -> F64:
    num_seqs, num_heads, head_dim = query.shape
    group = num_heads // key.shape[2]
    out = np.zeros((num_seqs, num_heads, head_dim))
    for i in range(num_seqs):
        n = int(seq_lens[i])
        if n == 0:
            continue
        k = np.repeat(key[i, :n], group, axis=1)  # [n, num_heads, d]: head h reads kv h // group
        v = np.repeat(value[i, :n], group, axis=1)
        s = np.einsum("hd,thd->ht", query[i], k) * scale
        w = np.exp(s - s.max(axis=-1, keepdims=True))
        w /= w.sum(axis=-1, keepdims=True)
        out[i] = np.einsum("ht,thd->hd", w, v)
    return out


def write_kv_cache_reference(
    key: npt.NDArray[Any],  # [num_tokens, num_kv_heads, head_dim], already in storage form
    value: npt.NDArray[Any],
    key_cache: npt.NDArray[Any],  # [num_blocks, block_size, num_kv_heads, head_dim]
    value_cache: npt.NDArray[Any],
    slot_mapping: npt.NDArray[np.integer[Any]],  # [num_tokens]
) -> None:
    block_size = key_cache.shape[1]
    keep = slot_mapping >= 0  # negative slots are padding tokens
    slots = slot_mapping[keep].astype(np.int64)
    blocks, offsets = slots // block_size, slots % block_size
    key_cache[blocks, offsets] = key[keep]
    value_cache[blocks, offsets] = value[keep]


def gather_reference(
    cache: npt.NDArray[Any],  # [num_blocks, block_size, num_kv_heads, head_dim]
    block_table: npt.NDArray[np.integer[Any]],  # [num_seqs, max_blocks_per_seq]
    seq_lens: npt.NDArray[np.integer[Any]],
    max_seq_len: int,
) -> npt.NDArray[Any]:
    num_seqs = block_table.shape[0]
    block_size = cache.shape[1]
    out = np.zeros((num_seqs, max_seq_len, *cache.shape[2:]), dtype=cache.dtype)
    for i in range(num_seqs):
        n = int(seq_lens[i])
        ids = block_table[i, : -(-n // block_size)]
        out[i, :n] = cache[ids].reshape(-1, *cache.shape[2:])[:n]
    return out
