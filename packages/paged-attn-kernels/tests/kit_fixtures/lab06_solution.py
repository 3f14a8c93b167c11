"""A correct learner's lab-06 module in numpy, written from the kit's contract."""

import numpy as np


def slot_mapping(block_table, positions, block_size):
    positions = np.asarray(positions)
    return np.asarray(block_table)[positions // block_size] * block_size + positions % block_size


def write_kv_cache(key, value, key_cache, value_cache, slot_mapping):
    keep = slot_mapping >= 0
    slots = slot_mapping[keep]
    bs = key_cache.shape[1]
    key_cache[slots // bs, slots % bs] = key[keep]
    value_cache[slots // bs, slots % bs] = value[keep]


def gather_kv(key_cache, value_cache, block_table, seq_lens):
    num_seqs, bs = len(seq_lens), key_cache.shape[1]
    n_max = int(max(seq_lens))
    keys = np.zeros((num_seqs, n_max, *key_cache.shape[2:]))
    values = np.zeros_like(keys)
    for i, n in enumerate(seq_lens):
        pos = np.arange(n)
        blocks = block_table[i, pos // bs]
        keys[i, :n] = key_cache[blocks, pos % bs]
        values[i, :n] = value_cache[blocks, pos % bs]
    return keys, values


def paged_attention(query, key_cache, value_cache, block_table, seq_lens):
    num_seqs, num_heads, d = query.shape
    bs, kv_heads = key_cache.shape[1], key_cache.shape[2]
    group = num_heads // kv_heads
    out = np.zeros_like(query)
    for i in range(num_seqs):
        n = int(seq_lens[i])
        q = query[i].reshape(kv_heads, group, d) / np.sqrt(d)
        m = np.full((kv_heads, group), -np.inf)
        total = np.zeros((kv_heads, group))
        acc = np.zeros((kv_heads, group, d))
        for j in range(-(-n // bs)):  # online softmax, one block at a time
            valid = min(bs, n - j * bs)
            k = key_cache[block_table[i, j], :valid]  # [valid, kv_heads, d]
            v = value_cache[block_table[i, j], :valid]
            s = np.einsum("hgd,thd->hgt", q, k)
            m_new = np.maximum(m, s.max(axis=2))
            p = np.exp(s - m_new[..., None])
            alpha = np.exp(m - m_new)
            total = total * alpha + p.sum(axis=2)
            acc = acc * alpha[..., None] + np.einsum("hgt,thd->hgd", p, v)
            m = m_new
        out[i] = (acc / total[..., None]).reshape(num_heads, d)
    return out
