"""SGLang's max_total_num_tokens: cell size, the static fraction, the logged line."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


GPT_OSS = ModelSpec.from_name("openai/gpt-oss-120b")


def _one_pool(model: ModelSpec, **kw: object) -> int:
    return sglang_plan(
        model, gpu_from_name("H100"), disable_hybrid_swa_memory=True, **kw
    ).max_total_num_tokens  # type: ignore[arg-type]


def test_hybrid_swa_model_gets_two_pools_split_by_the_ratio() -> None:
    # gpt-oss is one of SGLang's hybrid SWA architectures: 18 sliding + 18 full layers of
    # the same shape, so at r = 0.8 the full layers get tokens x 2 / 1.8.
    p = sglang_plan(GPT_OSS, gpu_from_name("H100"))
    one = _one_pool(GPT_OSS)
    assert p.hybrid_swa and p.swa_full_tokens_ratio == 0.8
    assert p.full_cell_size_bytes * 2 == p.cell_size_bytes
    assert p.max_total_num_tokens == int(one * 2 / 1.8)
    assert p.swa_max_total_num_tokens == int(p.max_total_num_tokens * 0.8)
    split, swa_pool, full_pool = p.log_lines()
    assert split == (
        f"Use sliding window memory pool. full_layer_tokens={p.max_total_num_tokens}, "
        f"swa_layer_tokens={p.swa_max_total_num_tokens}"
    )
    assert f"#tokens: {p.swa_max_total_num_tokens}," in swa_pool
    assert f"#tokens: {p.max_total_num_tokens}," in full_pool and full_pool == p.log_line()


def test_sliding_window_models_outside_sglangs_list_keep_one_pool() -> None:
    # Gemma 3 has sliding layers but is not a hybrid SWA architecture in SGLang.
    gemma = ModelSpec.from_name("google/gemma-3-27b-it")
    p = sglang_plan(gemma, gpu_from_name("H100"))
    assert not p.hybrid_swa and len(p.log_lines()) == 1
    assert p.max_total_num_tokens == _one_pool(gemma)
    off = sglang_plan(GPT_OSS, gpu_from_name("H100"), disable_hybrid_swa_memory=True)
    assert not off.hybrid_swa and off.max_total_num_tokens == _one_pool(GPT_OSS)


@settings(max_examples=60, deadline=None)
@given(
    ratio=st.floats(min_value=0.01, max_value=1.0),
    fraction=st.floats(min_value=0.85, max_value=0.99),
    page=st.sampled_from([1, 16, 64]),
)
def test_swa_split_spends_the_profiled_pool_and_no_more(
    ratio: float, fraction: float, page: int
) -> None:
    kw = {"mem_fraction_static": fraction, "page_size": page}
    p = sglang_plan(GPT_OSS, gpu_from_name("H100"), swa_full_tokens_ratio=ratio, **kw)
    one = sglang_plan(GPT_OSS, gpu_from_name("H100"), disable_hybrid_swa_memory=True, **kw)
    assert p.swa_max_total_num_tokens is not None
    full_cell, swa_cell = p.full_cell_size_bytes, p.cell_size_bytes - p.full_cell_size_bytes
    used = p.max_total_num_tokens * full_cell + p.swa_max_total_num_tokens * swa_cell
    profiled = max(0, one.rest_bytes) // one.cell_size_bytes * one.cell_size_bytes
    assert used <= profiled
    # page rounding of both pools (and int() of the full count) is all that is lost
    assert profiled - used <= (page + 1) * full_cell + (page + 1) * swa_cell
    assert p.max_total_num_tokens % page == 0 and p.swa_max_total_num_tokens % page == 0
    # SGLang takes the SWA count from the full count before rounding that to the page
    assert p.swa_max_total_num_tokens <= (p.max_total_num_tokens + page) * ratio


@pytest.mark.parametrize("ratio", [0, -0.5, 1.5, float("nan")])
def test_bad_swa_ratio_is_refused_by_name(ratio: float) -> None:
    before = sglang_plan(GPT_OSS, gpu_from_name("H100"))
    with pytest.raises(SettingError, match="swa-full-tokens-ratio"):
        sglang_plan(GPT_OSS, gpu_from_name("H100"), swa_full_tokens_ratio=ratio)
    assert sglang_plan(GPT_OSS, gpu_from_name("H100")) == before


def test_cli_sglang_swa_flags(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from capacity_planner.cli import main

    rc = main(
        ["openai/gpt-oss-120b", "--gpu", "H100", "--engine", "sglang",
         "--swa_full_tokens_ratio", "0.5", "--json"]
    )  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["swa_full_tokens_ratio"] == 0.5
    assert out["swa_max_total_num_tokens"] == out["max_total_num_tokens"] // 2
    assert out["log_lines"][0].startswith("Use sliding window memory pool.")
    rc = main(["openai/gpt-oss-120b", "--gpu", "H100", "--engine", "sglang",
               "--disable-hybrid-swa-memory", "--json"])  # fmt: skip
    assert rc == 0 and json.loads(capsys.readouterr().out)["swa_max_total_num_tokens"] is None
