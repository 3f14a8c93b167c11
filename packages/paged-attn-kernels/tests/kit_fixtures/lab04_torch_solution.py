"""A correct lab-04 contract in plain torch (stands in for a Triton kernel on the CPU)."""

import torch


def paged_attention(query, key_cache, value_cache, block_table, seq_lens):
    num_seqs, num_heads, d = query.shape
    bs, kv_heads = key_cache.shape[1], key_cache.shape[2]
    out = torch.empty_like(query)
    for i in range(num_seqs):
        n = int(seq_lens[i])
        pos = torch.arange(n, device=query.device)
        blocks = block_table[i, pos // bs].long()
        k = key_cache[blocks, pos % bs].float().repeat_interleave(num_heads // kv_heads, dim=1)
        v = value_cache[blocks, pos % bs].float().repeat_interleave(num_heads // kv_heads, dim=1)
        s = torch.einsum("hd,thd->ht", query[i].float(), k) / d**0.5
        out[i] = torch.einsum("ht,thd->hd", s.softmax(dim=1), v).to(query.dtype)
    return out
