"""A correct learner's lab-03 module, written from the kit's contract (not from the planner)."""


def kv_bytes_per_token(config, kv_dtype_bytes, tensor_parallel_size=1):
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads", heads)
    head_dim = config.get("head_dim", config["hidden_size"] // heads)
    kv_heads_here = max(1, kv_heads // tensor_parallel_size)
    return 2 * config["num_hidden_layers"] * kv_heads_here * head_dim * kv_dtype_bytes


def available_kv_memory(total_gpu_bytes, gpu_memory_utilization, non_kv_bytes):
    return int(total_gpu_bytes * gpu_memory_utilization) - non_kv_bytes


def num_gpu_blocks(available_kv_bytes, kv_bytes_per_token, block_size):
    return available_kv_bytes // (kv_bytes_per_token * block_size)


def kv_cache_tokens(num_gpu_blocks, block_size):
    return num_gpu_blocks * block_size


def max_concurrency(num_gpu_blocks, block_size, max_model_len):
    blocks_per_request = -(-max_model_len // block_size)
    return num_gpu_blocks / blocks_per_request
