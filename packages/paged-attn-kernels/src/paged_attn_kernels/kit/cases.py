"""Test cases the lab-06 and lab-04 kits feed a learner's kernels, with their answers.

A case is a paged KV cache in vLLM V1's flash layout with ragged sequences scattered over
a shuffled pool, plus the contiguous K/V it was written from and the dense float64
attention output every paged kernel must reproduce (the lab's "paged attention equals dense
attention" proof). ``poison=True`` fills every slot no sequence owns, and the block-table
entries past each sequence's last block, with NaN: a kernel that reads them, or forgets to
mask the tail of a last block, returns NaN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Case", "dense_attention", "make_case"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Case:
    query: F64  # [num_seqs, num_heads, head_dim]
    key_cache: F64  # [num_blocks, block_size, num_kv_heads, head_dim]
    value_cache: F64
    block_table: npt.NDArray[np.int32]  # [num_seqs, max_blocks_per_seq]
    seq_lens: npt.NDArray[np.int32]  # [num_seqs]
    keys: list[F64]  # per sequence [seq_len, num_kv_heads, head_dim], what was written
    values: list[F64]
    expected: F64  # [num_seqs, num_heads, head_dim], dense softmax in float64

    @property
    def block_size(self) -> int:
        return int(self.key_cache.shape[1])

    def describe(self) -> str:
        nb, bs, kvh, d = self.key_cache.shape
        return (
            f"seq_lens={self.seq_lens.tolist()}, block_size={bs}, "
            f"num_heads={self.query.shape[1]}, num_kv_heads={kvh}, head_dim={d}, "
            f"num_blocks={nb}"
        )


def dense_attention(query: F64, keys: list[F64], values: list[F64], scale: float) -> F64:
    """Softmax(q k^T * scale) v per sequence over contiguous K/V; query head h reads KV
    head h // (num_heads // num_kv_heads)."""
    num_seqs, num_heads, head_dim = query.shape
    out = np.zeros((num_seqs, num_heads, head_dim))
    for i in range(num_seqs):
        k, v = keys[i], values[i]  # [seq_len, kv_heads, d]
        if len(k) == 0:
            continue
        group = num_heads // k.shape[1]
        kh = np.repeat(k, group, axis=1)  # [seq_len, num_heads, d]
        vh = np.repeat(v, group, axis=1)
        s = np.einsum("hd,thd->ht", query[i], kh) * scale
        p = np.exp(s - s.max(axis=1, keepdims=True))
        out[i] = np.einsum("ht,thd->hd", p / p.sum(axis=1, keepdims=True), vh)
    return out


def make_case(
    seed: int,
    seq_lens: list[int],
    *,
    block_size: int = 16,
    num_kv_heads: int = 2,
    num_heads: int = 2,
    head_dim: int = 16,
    spare_blocks: int = 5,
    poison: bool = False,
    query_scale: float = 1.0,
) -> Case:
    rng = np.random.default_rng(seed)
    need = [-(-n // block_size) for n in seq_lens]
    num_blocks = 1 + sum(need) + spare_blocks  # block 0 stays unused, as vLLM's null block
    ids = rng.permutation(np.arange(1, num_blocks))  # shuffled: no sequence is contiguous
    width = max(max(need), 1) + 1  # one padding column at least
    fill = np.nan if poison else 0.0
    shape = (num_blocks, block_size, num_kv_heads, head_dim)
    key_cache: F64 = np.full(shape, fill)
    value_cache: F64 = np.full(shape, fill)
    spare = ids[sum(need) :] if spare_blocks else np.zeros(1, np.int64)
    table = np.zeros((len(seq_lens), width), np.int32)
    keys, values = [], []
    start = 0
    for i, n in enumerate(seq_lens):
        own = ids[start : start + need[i]]
        start += need[i]
        table[i, : need[i]] = own
        # padding entries point at blocks nobody owns (poisoned when poison=True)
        table[i, need[i] :] = rng.choice(spare, width - need[i])
        k = rng.standard_normal((n, num_kv_heads, head_dim))
        v = rng.standard_normal((n, num_kv_heads, head_dim))
        pos = np.arange(n)
        blk, off = own[pos // block_size], pos % block_size
        key_cache[blk, off] = k
        value_cache[blk, off] = v
        keys.append(k)
        values.append(v)
    query = rng.standard_normal((len(seq_lens), num_heads, head_dim)) * query_scale
    expected = dense_attention(query, keys, values, 1.0 / np.sqrt(head_dim))
    return Case(
        query=query,
        key_cache=key_cache,
        value_cache=value_cache,
        block_table=table,
        seq_lens=np.asarray(seq_lens, np.int32),
        keys=keys,
        values=values,
        expected=expected,
    )


def reference_slots(table_row: npt.NDArray[Any], positions: I64, block_size: int) -> I64:
    """slot = block_table[pos // block_size] * block_size + pos % block_size."""
    row = np.asarray(table_row, np.int64)
    return row[positions // block_size] * block_size + positions % block_size
