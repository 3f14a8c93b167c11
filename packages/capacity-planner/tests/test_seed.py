"""The Phase 02 labs, lab-03: "# GPU blocks: 8788" and "Maximum concurrency: 68.65x", explained.

8788 blocks at block_size 16 print 68.66x at max_model_len 2048 under every vLLM formula
(V0: 8788*16/2048 = 68.656; V1: 8788/cdiv(2048, 16) = 68.656); 68.65x is what 8787
blocks print. No (block size <= 32, integer max_model_len) pair prints both numbers.
"""

from __future__ import annotations

from capacity_planner import ModelSpec, compute_kv_cache_config, gpu_from_name
from capacity_planner.accounting.startup import EngineSettings
from capacity_planner.plan import plan

MiB = 1 << 20
LLAMA3 = ModelSpec.from_name("meta-llama/Meta-Llama-3-8B")


def _printed(blocks: int, block_size: int, length: int) -> set[str]:
    v0 = blocks * block_size / length
    v1 = blocks / -(-length // block_size)
    return {f"{v0:.2f}", f"{v1:.2f}"}


def test_8788_blocks_print_68_66_not_68_65() -> None:
    assert _printed(8788, 16, 2048) == {"68.66"}
    assert _printed(8787, 16, 2048) == {"68.65"}


def test_no_standard_configuration_prints_both_seed_numbers() -> None:
    # 68.65x needs max_model_len <= 8788 * 32 / 68.645 < 4097 for block sizes up to 32.
    for block_size in (1, 8, 16, 32):
        for length in range(1, 4097):
            assert "68.65" not in _printed(8788, block_size, length), (block_size, length)


def test_carve_8788_blocks_from_llama3_8b_memory() -> None:
    # 8788 blocks x 2 MiB (32 layers x 64 KiB pages) = 17,576 MiB = 17.16 GiB of KV cache.
    for version in ("v0", "v1"):
        cfg = compute_kv_cache_config(
            LLAMA3, 17_576 * MiB, max_model_len=2048, vllm_version=version
        )
        assert cfg.num_blocks == 8788 and cfg.num_tokens == 140_608
        assert f"{cfg.max_concurrency:.2f}" == "68.66"


def test_named_end_to_end_configuration() -> None:
    # Meta-Llama-3-8B on an A100-40GB (39.38 GiB), vLLM V0, --max-model-len 2048,
    # --gpu-memory-utilization 0.83: the planner lands within one block of the lab.
    p = plan(
        LLAMA3,
        gpu_from_name("A100-40GB"),
        EngineSettings(gpu_memory_utilization=0.83, max_model_len=2048, vllm_version="v0"),
    )
    assert p.kv.num_blocks == 8789
    assert "Maximum concurrency for 2048 tokens per request: 68.66x" in p.log_lines()
    # A profile peak 2 MiB above the estimate (0.01% of the budget) gives the lab's 8788.
    exact = plan(
        LLAMA3,
        gpu_from_name("A100-40GB"),
        EngineSettings(
            gpu_memory_utilization=0.83,
            max_model_len=2048,
            vllm_version="v0",
            activation_bytes=p.memory.activation_bytes + 2 * MiB,
        ),
    )
    assert exact.kv.num_blocks == 8788
