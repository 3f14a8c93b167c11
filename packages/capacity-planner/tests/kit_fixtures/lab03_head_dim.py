"""Planted bug: head_dim always derived as hidden_size / num_attention_heads."""

from lab03_solution import (  # noqa: F401
    available_kv_memory,
    kv_cache_tokens,
    max_concurrency,
    num_gpu_blocks,
)


def kv_bytes_per_token(config, kv_dtype_bytes, tensor_parallel_size=1):
    heads = config["num_attention_heads"]
    kv_heads = config.get("num_key_value_heads", heads)
    head_dim = config["hidden_size"] // heads  # BUG: ignores an explicit head_dim
    return (
        2
        * config["num_hidden_layers"]
        * max(1, kv_heads // tensor_parallel_size)
        * head_dim
        * kv_dtype_bytes
    )
