"""SGLang's max_total_num_tokens: cell size, the static fraction, the logged line."""

from __future__ import annotations

import pytest

from capacity_planner import GiB, ModelSpec, SettingError, gpu_from_name
from capacity_planner.sglang import default_mem_fraction_static, sglang_plan

QWEN_235B = ModelSpec.from_name("Qwen/Qwen3-235B-A22B-FP8")


def test_cell_size_and_tokens_follow_the_formula() -> None:
    p = sglang_plan(QWEN_235B, gpu_from_name("H100"), tensor_parallel_size=4, kv_cache_dtype="auto")
    # 4 KV heads / 4 ranks = 1 head of 128, K and V, 94 layers, bf16.
    assert p.cell_size_bytes == 1 * 2 * 128 * 94 * 2
    assert p.max_total_num_tokens == max(0, p.rest_bytes) // p.cell_size_bytes


def test_logged_k_and_v_sizes_reproduce_a_real_line() -> None:
    # SGLang logged 367,404 tokens with K size 8.23 GB for Qwen3-235B-A22B-FP8 at TP 4
    # (vLLM issue #21348): K alone is 367404 x 94 x 128 x 2 B.
    p = sglang_plan(
        QWEN_235B,
        gpu_from_name("H100"),
        tensor_parallel_size=4,
        weights_bytes=0,
        mem_fraction_static=0.5,
    )
    k_gib = 367_404 * p.cell_size_bytes / 2 / GiB
    assert f"{k_gib:.2f}" == "8.23"


def test_default_fraction_reserves_at_least_10_gb_on_big_gpus() -> None:
    h100 = gpu_from_name("H100")
    f = default_mem_fraction_static(h100)
    reserved_mb = h100.memory_bytes / (1 << 20) * (1 - f)
    assert 0.8 < f < 0.9 and reserved_mb >= 10 * 1024 - 1
    l4 = gpu_from_name("L4")
    small = default_mem_fraction_static(l4)
    # 512 MB + 1.5 MB x 2048 tokens + 1/8 GB + 512 MB of graphs on a 22 GiB card.
    assert small == round(1 - 4224 / (l4.memory_bytes / (1 << 20)), 3)


def test_bad_fraction_and_vllm_only_dtypes() -> None:
    with pytest.raises(SettingError, match="mem-fraction-static"):
        sglang_plan(QWEN_235B, gpu_from_name("H100"), mem_fraction_static=0)
    with pytest.raises(SettingError, match="SGLang"):
        sglang_plan(
            QWEN_235B, gpu_from_name("H100"), kv_cache_dtype="nvfp4", tensor_parallel_size=4
        )


def test_pool_is_empty_when_the_weights_exceed_the_fraction() -> None:
    p = sglang_plan(ModelSpec.from_name("meta-llama/Llama-3.1-70B-Instruct"), gpu_from_name("L4"))
    assert not p.starts and "Not enough memory" in p.log_line()


def test_explain_log_reads_sglangs_pool_line() -> None:
    from capacity_planner.explain import explain_log

    line = (
        "[2025-07-20 10:00:00 TP0] KV Cache is allocated. dtype: torch.bfloat16, "
        "#tokens: 367404, K size: 8.23 GB, V size: 8.23 GB\n"
    )
    (run,) = explain_log(
        line, model="Qwen/Qwen3-235B-A22B-FP8", overrides={"tensor_parallel_size": 4}
    ).runs
    check = run.check("SGLang K size")
    assert check is not None and check.status == "consistent"
    (wrong,) = explain_log(
        line, model="Qwen/Qwen3-235B-A22B-FP8", overrides={"tensor_parallel_size": 2}
    ).runs
    bad = wrong.check("SGLang K size")
    assert bad is not None and bad.status == "inconsistent"
