"""A correct learner's lab-02 module, written from the kit's contract (not from frag_sim)."""


def _fcfs(costs, budget):
    used = n = 0
    for c in costs:
        if used + c > budget:
            break
        used, n = used + c, n + 1
    return n


def contiguous_admissions(seq_lens, capacity_tokens, max_model_len):
    return _fcfs([max_model_len for _ in seq_lens], capacity_tokens)


def paged_admissions(seq_lens, capacity_tokens, block_size):
    return _fcfs([-(-n // block_size) for n in seq_lens], capacity_tokens // block_size)


def contiguous_waste(seq_lens, capacity_tokens, max_model_len):
    k = contiguous_admissions(seq_lens, capacity_tokens, max_model_len)
    return 1 - sum(seq_lens[:k]) / (k * max_model_len) if k else 0.0


def paged_waste(seq_lens, capacity_tokens, block_size):
    k = paged_admissions(seq_lens, capacity_tokens, block_size)
    slots = sum(-(-n // block_size) * block_size for n in seq_lens[:k])
    return 1 - sum(seq_lens[:k]) / slots if k else 0.0
