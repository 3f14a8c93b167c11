"""Every rank is planned; vLLM's minimum over ranks decides; the report names the rank."""

from __future__ import annotations

from capacity_planner import EngineSettings, ModelSpec, gpu_from_name, plan
from capacity_planner.report import format_plan

LLAMA = ModelSpec.from_name("meta-llama/Llama-3.1-8B-Instruct")
H100 = gpu_from_name("H100")


def test_pipeline_stages_differ_and_the_minimum_decides() -> None:
    p = plan(LLAMA, H100, EngineSettings(pipeline_parallel_size=4, max_model_len=8192))
    assert len(p.ranks) == 4
    weights = [r.weights_bytes for r in p.ranks]
    # The first stage holds the embeddings, the last the lm_head and the sampler.
    assert weights[0] > weights[1] and weights[-1] > weights[1]
    assert p.ranks[-1].activation_bytes >= p.ranks[1].activation_bytes
    blocks = p.kv.stage_num_blocks
    assert p.kv.num_blocks == min(blocks)
    assert blocks[p.kv.deciding_stage] == min(blocks)
    assert p.memory is p.ranks[p.kv.deciding_stage]
    text = format_plan(p)
    assert "<- decides" in text and f"stage {p.kv.deciding_stage}" in text


def test_tensor_parallel_ranks_share_one_row_and_shard_weights() -> None:
    one = plan(LLAMA, H100, EngineSettings(max_model_len=8192), with_cold_start=False)
    two = plan(
        LLAMA,
        H100,
        EngineSettings(tensor_parallel_size=2, max_model_len=8192),
        with_cold_start=False,
    )
    assert len(two.ranks) == 1
    # Everything is sharded but the layer norms, which every rank holds whole.
    norms = 2 * 2 * LLAMA.hidden_size * LLAMA.num_hidden_layers
    assert 0 <= two.memory.weights_bytes * 2 - one.memory.weights_bytes <= norms + 4
    assert two.kv.page_size_bytes * 2 == one.kv.page_size_bytes
    assert two.to_dict()["ranks"][0]["rank"] == "stage 0, TP ranks 0-1"


def test_per_stage_available_memory_goes_into_the_carve() -> None:
    from capacity_planner import compute_kv_cache_config

    cfg = compute_kv_cache_config(
        LLAMA, [8 << 30, 1 << 30], pipeline_parallel_size=2, max_model_len=4096
    )
    assert cfg.deciding_stage == 1
    assert cfg.stage_num_blocks[0] > cfg.stage_num_blocks[1] == cfg.num_blocks


def test_v0_driver_rank_alone_runs_the_sampler() -> None:
    s = EngineSettings(tensor_parallel_size=4, max_model_len=2048, vllm_version="0.6.4")
    p = plan(ModelSpec.from_name("Qwen/Qwen2.5-72B-Instruct"), gpu_from_name("A100-80GB"), s)
    labels = [r.rank_label for r in p.ranks]
    assert labels == ["stage 0, TP rank 0", "stage 0, TP ranks 1-3"]
    driver, others = p.ranks
    assert driver.activation_bytes >= others.activation_bytes
    assert p.memory is driver and driver.available_kv_bytes <= others.available_kv_bytes


def test_uneven_expert_parallel_placement_makes_the_first_ranks_heavier() -> None:
    import json
    from pathlib import Path

    cfg = json.loads((Path(__file__).parent / "data" / "mixtral-8x7b.json").read_text())
    cfg["num_local_experts"] = 6  # 6 experts over 4 ranks: 2, 2, 1, 1
    model = ModelSpec.from_hf_config(cfg)
    s = EngineSettings(tensor_parallel_size=4, max_model_len=8192, enable_expert_parallel=True)
    p = plan(model, H100, s)
    heavy, light = p.ranks
    assert heavy.tp_ranks == (0, 1) and light.tp_ranks == (2, 3)
    assert heavy.weights_bytes > light.weights_bytes and p.memory is heavy
    assert p.kv.num_blocks == heavy.available_kv_bytes // p.kv.bytes_per_block
