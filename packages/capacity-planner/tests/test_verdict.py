"""Will it start? The failing step, vLLM's reason, and changes that are verified to work."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from capacity_planner import (
    EngineSettings,
    ModelSpec,
    gpu_from_name,
    plan,
    resolve_gpu,
    will_it_start,
)

LLAMA_8B = ModelSpec.from_name("meta-llama/Llama-3.1-8B-Instruct")
LLAMA_70B = ModelSpec.from_name("meta-llama/Llama-3.1-70B-Instruct")
GPT_OSS = ModelSpec.from_name("openai/gpt-oss-120b")


def test_70b_on_an_l4_says_the_weights_do_not_fit_never_a_negative_figure() -> None:
    p = plan(LLAMA_70B, gpu_from_name("L4"))
    v = will_it_start(p)
    assert not v.starts and v.stage == "load" and "weights do not fit" in v.reason
    assert p.memory.available_kv_bytes == 0 and p.memory.shortfall_bytes > 0
    assert all(s.bytes >= 0 for s in p.memory.steps)
    assert not any("-" in line.split(":")[-1][:3] for line in p.log_lines())
    assert p.log_lines()[0].startswith("torch.OutOfMemoryError")
    # No single knob helps; the suggestion combines TP with a length, and it starts.
    (change,) = v.changes
    tp, _, length = change.value.partition(" --max-model-len ")
    fixed = dataclasses.replace(p.settings, tensor_parallel_size=int(tp), max_model_len=int(length))
    assert plan(LLAMA_70B, gpu_from_name("L4"), fixed).starts


def test_gpt_oss_120b_on_one_h100_is_refused_as_vllm_0_11_refused_it() -> None:
    s = EngineSettings(
        vllm_version="0.11.0", gpu_memory_utilization=0.95, max_num_batched_tokens=1024
    )
    p = plan(GPT_OSS, gpu_from_name("H100"), s)
    v = will_it_start(p)
    assert not v.starts and v.stage == "check"
    assert "(4.54 GiB KV cache is needed" in v.reason  # the figure vLLM logged
    flags = {c.flag for c in v.changes}
    assert {"--max-model-len", "--gpu-memory-utilization", "--kv-cache-dtype"} <= flags


@settings(max_examples=12, deadline=None)
@given(length=st.integers(8_192, 131_072), util=st.sampled_from([0.5, 0.7, 0.9]))
def test_every_suggested_change_starts_and_is_minimal(length: int, util: float) -> None:
    gpu = gpu_from_name("L4")
    s = EngineSettings(max_model_len=length, gpu_memory_utilization=util)
    p = plan(LLAMA_8B, gpu, s)
    v = will_it_start(p)
    assert v.starts == p.starts
    for change in v.changes:
        if change.flag == "--max-model-len":
            ok = plan(LLAMA_8B, gpu, dataclasses.replace(s, max_model_len=int(change.value)))
            one_more = dataclasses.replace(s, max_model_len=int(change.value) + 1)
            assert ok.starts and not plan(LLAMA_8B, gpu, one_more).starts
        if change.flag == "--gpu-memory-utilization":
            u = float(change.value)
            assert plan(LLAMA_8B, gpu, dataclasses.replace(s, gpu_memory_utilization=u)).starts
            below = dataclasses.replace(s, gpu_memory_utilization=round(u - 0.001, 3))
            assert not plan(LLAMA_8B, gpu, below).starts


def test_a_plan_that_starts_has_no_changes_and_reports_cold_start() -> None:
    p = plan(LLAMA_8B, gpu_from_name("H100"), EngineSettings(max_model_len=8192))
    v = will_it_start(p)
    assert v.starts and v.changes == () and v.cold_start is not None
    assert p.cold is not None and p.cold.kv.num_blocks < p.kv.num_blocks


def test_cold_compile_cache_can_be_the_difference() -> None:
    # A small card where the warm start just fits: the cold start needs 2.4 GiB more.
    gpu = resolve_gpu("16GiB")
    s = EngineSettings(max_model_len=32_768)
    qwen = ModelSpec.from_name("Qwen/Qwen2.5-7B-Instruct")
    q = dataclasses.replace(s, quantization="awq")
    p = plan(qwen, gpu, q)
    if p.starts and p.cold is not None and not p.cold.starts:
        v = will_it_start(p)
        assert v.starts and v.cold_start is not None and "cold" in v.cold_start
    else:  # the pair must differ by the modelled amount either way
        assert p.cold is not None
        assert p.memory.available_kv_bytes >= p.cold.memory.available_kv_bytes


def test_a_budget_above_free_memory_fails_before_034_but_not_in_034() -> None:
    h100 = gpu_from_name("H100")
    s = EngineSettings(gpu_memory_utilization=1.0, max_model_len=8192)
    old = plan(LLAMA_8B, h100, dataclasses.replace(s, vllm_version="0.33.0"))
    v = will_it_start(old)
    assert not v.starts and v.stage == "init" and "Free memory on device" in v.reason
    (change,) = v.changes
    fixed = dataclasses.replace(old.settings, gpu_memory_utilization=float(change.value))
    assert change.flag == "--gpu-memory-utilization" and plan(LLAMA_8B, h100, fixed).starts
    assert plan(LLAMA_8B, h100, s).starts  # 0.34 only caps its budget at the free memory
