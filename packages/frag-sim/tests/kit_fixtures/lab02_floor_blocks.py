"""Planted bug: a request takes len // block_size blocks (the partial last block is lost)."""

from lab02_solution import contiguous_admissions, contiguous_waste  # noqa: F401


def paged_admissions(seq_lens, capacity_tokens, block_size):
    used = n = 0
    for length in seq_lens:
        need = length // block_size  # BUG: should round up
        if used + need > capacity_tokens // block_size:
            break
        used, n = used + need, n + 1
    return n


def paged_waste(seq_lens, capacity_tokens, block_size):
    k = paged_admissions(seq_lens, capacity_tokens, block_size)
    slots = sum(max(1, n // block_size) * block_size for n in seq_lens[:k])
    return max(0.0, 1 - sum(seq_lens[:k]) / slots) if k else 0.0
