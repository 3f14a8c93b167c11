"""Planted bug: query head h reads KV head h % num_kv_heads (interleaved, not grouped)."""

import numpy as np
from lab06_solution import gather_kv, slot_mapping, write_kv_cache  # noqa: F401


def paged_attention(query, key_cache, value_cache, block_table, seq_lens):
    keys, values = gather_kv(key_cache, value_cache, block_table, seq_lens)
    num_heads, d = query.shape[1], query.shape[2]
    kv_heads = key_cache.shape[2]
    out = np.zeros_like(query)
    for i, n in enumerate(seq_lens):
        for h in range(num_heads):
            kv = h % kv_heads  # BUG: should be h // (num_heads // kv_heads)
            s = keys[i, :n, kv] @ query[i, h] / np.sqrt(d)
            p = np.exp(s - s.max())
            out[i, h] = p @ values[i, :n, kv] / p.sum()
    return out
