"""Planted bug: reads every block-table entry, padding included, masking nothing."""

import torch


def paged_attention(query, key_cache, value_cache, block_table, seq_lens):
    num_seqs, num_heads, d = query.shape
    kv_heads = key_cache.shape[2]
    out = torch.empty_like(query)
    for i in range(num_seqs):
        blocks = block_table[i].long()  # BUG: the whole row, past the last block too
        k = key_cache[blocks].flatten(0, 1).float().repeat_interleave(num_heads // kv_heads, dim=1)
        v = (
            value_cache[blocks]
            .flatten(0, 1)
            .float()
            .repeat_interleave(num_heads // kv_heads, dim=1)
        )
        s = torch.einsum("hd,thd->ht", query[i].float(), k) / d**0.5
        out[i] = torch.einsum("ht,thd->hd", s.softmax(dim=1), v).to(query.dtype)
    return out
