"""Planted bug: the whole last block is scored, slots past seq_len included."""

import numpy as np
from lab06_solution import gather_kv, slot_mapping, write_kv_cache  # noqa: F401


def paged_attention(query, key_cache, value_cache, block_table, seq_lens):
    num_heads, d = query.shape[1], query.shape[2]
    bs, kv_heads = key_cache.shape[1], key_cache.shape[2]
    group = num_heads // kv_heads
    out = np.zeros_like(query)
    for i, n in enumerate(seq_lens):
        blocks = block_table[i, : -(-int(n) // bs)]
        k = key_cache[blocks].reshape(-1, kv_heads, d)  # BUG: not cut at n
        v = value_cache[blocks].reshape(-1, kv_heads, d)
        for h in range(num_heads):
            s = k[:, h // group] @ query[i, h] / np.sqrt(d)
            p = np.exp(s - s.max())
            out[i, h] = p @ v[:, h // group] / p.sum()
    return out
