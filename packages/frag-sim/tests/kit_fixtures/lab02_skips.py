"""Planted bug: admission skips a request that does not fit and admits later ones."""

from lab02_solution import contiguous_admissions, contiguous_waste, paged_waste  # noqa: F401


def paged_admissions(seq_lens, capacity_tokens, block_size):
    free = capacity_tokens // block_size
    n = 0
    for length in seq_lens:
        need = -(-length // block_size)
        if need <= free:  # BUG: not FCFS, a smaller later request jumps the queue
            free -= need
            n += 1
    return n
