"""A correct learner's lab-06 paged_attention in numba (the other functions in numpy)."""

import numba
import numpy as np
from lab06_solution import gather_kv, slot_mapping, write_kv_cache  # noqa: F401


@numba.njit(cache=False)
def _attend(query, key_cache, value_cache, block_table, seq_lens, out):
    num_seqs, num_heads, d = query.shape
    bs, kv_heads = key_cache.shape[1], key_cache.shape[2]
    group = num_heads // kv_heads
    scale = 1.0 / np.sqrt(d)
    for i in range(num_seqs):
        n = seq_lens[i]
        for h in range(num_heads):
            kv = h // group
            m, total = -np.inf, 0.0
            acc = np.zeros(d)
            for t in range(n):
                blk, off = block_table[i, t // bs], t % bs
                s = 0.0
                for x in range(d):
                    s += query[i, h, x] * key_cache[blk, off, kv, x]
                s *= scale
                m_new = max(m, s)
                alpha, p = np.exp(m - m_new), np.exp(s - m_new)
                total = total * alpha + p
                for x in range(d):
                    acc[x] = acc[x] * alpha + p * value_cache[blk, off, kv, x]
                m = m_new
            for x in range(d):
                out[i, h, x] = acc[x] / total


def paged_attention(query, key_cache, value_cache, block_table, seq_lens):
    out = np.zeros_like(query)
    _attend(query, key_cache, value_cache, block_table, seq_lens.astype(np.int64), out)
    return out
