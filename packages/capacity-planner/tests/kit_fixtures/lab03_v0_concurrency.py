"""Planted bug: concurrency as tokens / max_model_len (vLLM V0's print), not whole blocks."""

import lab03_solution as _solution

kv_bytes_per_token = _solution.kv_bytes_per_token
available_kv_memory = _solution.available_kv_memory
num_gpu_blocks = _solution.num_gpu_blocks
kv_cache_tokens = _solution.kv_cache_tokens


def max_concurrency(blocks, block_size, max_model_len):
    return blocks * block_size / max_model_len  # BUG: a request's last block is partial
