"""Planted bug: softmax without subtracting the maximum (exp overflows on large scores)."""

import numpy as np
from lab06_solution import gather_kv, slot_mapping, write_kv_cache  # noqa: F401


def paged_attention(query, key_cache, value_cache, block_table, seq_lens):
    keys, values = gather_kv(key_cache, value_cache, block_table, seq_lens)
    num_heads, d = query.shape[1], query.shape[2]
    group = num_heads // key_cache.shape[2]
    out = np.zeros_like(query)
    for i, n in enumerate(seq_lens):
        for h in range(num_heads):
            p = np.exp(keys[i, :n, h // group] @ query[i, h] / np.sqrt(d))  # BUG: no max
            out[i, h] = p @ values[i, :n, h // group] / p.sum()
    return out
