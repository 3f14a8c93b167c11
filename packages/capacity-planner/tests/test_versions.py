"""Regimes, release numbers and per-version defaults, as read from the vLLM wheels."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capacity_planner import (
    DEFAULT_VERSION,
    EngineSettings,
    GiB,
    ModelSpec,
    SettingError,
    gpu_from_name,
    plan,
    resolve_gpu,
    resolve_version,
    will_it_start,
)
from capacity_planner.accounting.startup import MARGIN_FLOOR, estimate_stage_memory
from capacity_planner.accounting.terms import CUDA_CONTEXT

LLAMA = ModelSpec.from_name("meta-llama/Llama-3.1-8B-Instruct")
H100 = gpu_from_name("H100")


@pytest.mark.parametrize(
    ("release", "regime"),
    [
        ("0.6.4", "v0"),
        ("0.7.2", "v0"),
        ("0.7.3", "v1-0.8"),
        ("0.8.5", "v1-0.8"),
        ("0.9.2", "v1"),
        ("0.19.0", "v1"),
        ("0.20.0", "v1-graphs"),
        ("0.21.0", "v1-2026"),
        ("v0.33.1", "v1-2026"),
        ("0.34.0", "v1-extensible"),
        ("0.34.0rc1", "v1-extensible"),
        ("v1-graphs", "v1-graphs"),
    ],
)
def test_release_numbers_map_to_regimes(release: str, regime: str) -> None:
    assert resolve_version(release) == regime


@pytest.mark.parametrize("bad", ["latest", "1.2.0", "", "0.x"])
def test_unknown_versions_are_refused_with_the_choices(bad: str) -> None:
    with pytest.raises(SettingError, match="vllm_version"):
        EngineSettings(vllm_version=bad)


@pytest.mark.parametrize(
    ("version", "util", "block"),
    [("0.19.0", 0.9, 16), ("0.20.0", 0.92, 16), ("0.33.0", 0.92, 16), ("0.34.0", 1.0, 64)],
)
def test_defaults_per_version(version: str, util: float, block: int) -> None:
    s = EngineSettings(vllm_version=version)
    assert s.resolved_gpu_memory_utilization == util
    assert s.resolved_block_size == block
    p = plan(LLAMA, H100, dataclasses.replace(s, max_model_len=8192), with_cold_start=False)
    assert p.kv.block_size == block and p.memory.gpu_memory_utilization == util


def test_default_is_034_extensible_sizing() -> None:
    assert DEFAULT_VERSION == "v1-extensible"
    m = estimate_stage_memory(LLAMA, H100, EngineSettings(max_model_len=8192))
    assert m.sizing == "extensible"
    # The device bound decides at utilisation 1.0: free at start-up less every resident
    # term, the margin and the transient peak.
    non_kv = m.weights_bytes + m.non_torch_bytes + m.cuda_graph_bytes
    margin = max(MARGIN_FLOOR, int(0.75 * m.transient_bytes))
    expected = H100.memory_bytes - CUDA_CONTEXT - non_kv - margin - m.transient_bytes
    assert m.available_kv_bytes == expected


def test_utilization_below_one_caps_the_extensible_cache() -> None:
    low = estimate_stage_memory(LLAMA, H100, EngineSettings(gpu_memory_utilization=0.5))
    full = estimate_stage_memory(LLAMA, H100, EngineSettings())
    assert low.available_kv_bytes < full.available_kv_bytes
    non_kv = low.weights_bytes + low.non_torch_bytes + low.cuda_graph_bytes
    assert low.available_kv_bytes == low.requested_bytes - non_kv - low.transient_bytes


def test_kv_cache_memory_turns_the_extensible_cache_off() -> None:
    s = EngineSettings(kv_cache_memory_bytes=4 * GiB, max_model_len=8192)
    p = plan(LLAMA, H100, s)
    assert p.memory.sizing == "profile" and p.memory.available_kv_bytes == 4 * GiB


def test_034_log_lines_name_warmup_and_extension() -> None:
    lines = plan(LLAMA, H100, EngineSettings(max_model_len=8192)).log_lines()
    assert any(line.startswith("Memory after warmup: ") for line in lines)
    ext = next(line for line in lines if line.startswith("Extended KV cache to "))
    size = next(line for line in lines if line.startswith("GPU KV cache size: "))
    assert "Maximum concurrency for 8,192 tokens per request" in size  # one line since 0.21
    assert ext.split()[4] == str(
        plan(LLAMA, H100, EngineSettings(max_model_len=8192)).kv.num_blocks
    )


def test_graphs_subtracted_from_020_not_before() -> None:
    s = EngineSettings(max_model_len=8192, gpu_memory_utilization=0.9)
    a = plan(LLAMA, H100, dataclasses.replace(s, vllm_version="0.19.0"), with_cold_start=False)
    b = plan(LLAMA, H100, dataclasses.replace(s, vllm_version="0.20.0"), with_cold_start=False)
    assert a.memory.available_kv_bytes - b.memory.available_kv_bytes == b.memory.cuda_graph_bytes


def test_034_checks_one_request_without_the_null_block() -> None:
    s = EngineSettings(kv_cache_memory_bytes=1, max_model_len=64)
    # One block of 64 tokens: 0.34 holds the null block back, so one request does not fit.
    per_block = plan(LLAMA, H100, s, with_cold_start=False).kv.bytes_per_block
    one = plan(
        LLAMA, H100, dataclasses.replace(s, kv_cache_memory_bytes=per_block), with_cold_start=False
    )
    two = plan(
        LLAMA,
        H100,
        dataclasses.replace(s, kv_cache_memory_bytes=2 * per_block),
        with_cold_start=False,
    )
    assert one.kv.num_blocks == 1 and not one.kv.fits
    assert two.kv.fits
    old = plan(
        LLAMA,
        H100,
        dataclasses.replace(s, kv_cache_memory_bytes=per_block, vllm_version="0.33.0"),
        with_cold_start=False,
    )
    assert old.kv.fits  # 0.33 compares the same bytes with no block held back


@settings(max_examples=25, deadline=None)
@given(
    gib=st.floats(8, 200),
    version=st.sampled_from(["0.6.4", "0.10.0", "0.20.0", "0.33.0", "0.34.0"]),
    util=st.one_of(st.none(), st.floats(0.3, 1.0)),
    name=st.sampled_from(
        ["meta-llama/Llama-3.1-8B-Instruct", "openai/gpt-oss-120b", "Qwen/Qwen3-32B"]
    ),
)
def test_no_negative_figure_and_the_verdict_matches_the_plan(
    gib: float, version: str, util: float | None, name: str
) -> None:
    gpu = resolve_gpu(f"{gib:.2f}GiB")
    s = EngineSettings(vllm_version=version, gpu_memory_utilization=util, max_model_len=8192)
    p = plan(ModelSpec.from_name(name), gpu, s, with_cold_start=False)
    m = p.memory
    assert m.available_kv_bytes >= 0 and m.shortfall_bytes >= 0
    assert not (m.available_kv_bytes and m.shortfall_bytes)
    assert all(step.bytes >= 0 for step in m.steps)
    assert all("GiB" not in line or " -" not in line for line in p.log_lines())
    v = will_it_start(p, suggest=False)
    assert v.starts == p.starts
    # The stages fail in vLLM's order: the start-up budget check comes before loading.
    if not m.budget_fits_free:
        assert v.stage == "init"
    elif not m.weights_fit:
        assert v.stage == "load"


@settings(max_examples=15, deadline=None)
@given(gib=st.floats(20, 150), more=st.floats(0.5, 40))
def test_extensible_cache_grows_with_the_gpu(gib: float, more: float) -> None:
    # Fixed batch limits: vLLM's own defaults jump at 70 GiB (256 -> 1024 sequences), which
    # can give a 70 GiB card less KV cache than a 65 GiB one.
    s = EngineSettings(max_num_seqs=256, max_num_batched_tokens=2048)
    small = estimate_stage_memory(LLAMA, resolve_gpu(f"{gib:.2f}GiB"), s)
    big = estimate_stage_memory(LLAMA, resolve_gpu(f"{gib + more:.2f}GiB"), s)
    assert big.available_kv_bytes >= small.available_kv_bytes


def test_compatibility_import_paths() -> None:
    from capacity_planner import KVCacheConfig
    from capacity_planner.explain import explain_log
    from capacity_planner.explain_log import explain_log as old_explain
    from capacity_planner.kv_config import KVCacheConfig as OldKV
    from capacity_planner.model_spec import ModelSpec as OldSpec
    from capacity_planner.startup import EngineSettings as OldSettings
    from capacity_planner.startup import kv_config_for, weight_bytes_per_rank

    assert (OldKV, OldSpec, OldSettings, old_explain) == (
        KVCacheConfig,
        ModelSpec,
        EngineSettings,
        explain_log,
    )
    assert callable(kv_config_for) and callable(weight_bytes_per_rank)


def test_max_model_len_minus_one_auto_fits_like_vllm() -> None:
    l4 = gpu_from_name("L4")
    p = plan(LLAMA, l4, EngineSettings(max_model_len=-1))
    fitted = p.kv.max_model_len
    assert p.starts and fitted < LLAMA.max_position_embeddings
    assert p.auto_fit_line is not None and f"to {fitted} " in p.auto_fit_line
    assert p.auto_fit_line in p.log_lines()
    longer = plan(LLAMA, l4, EngineSettings(max_model_len=fitted + 64))
    assert not longer.starts
    full = plan(LLAMA, H100, EngineSettings(max_model_len=-1))
    assert full.kv.max_model_len == LLAMA.max_position_embeddings
    with pytest.raises(SettingError, match="auto-fit"):
        EngineSettings(max_model_len=-1, vllm_version="0.6.4")
