"""The dummy sampler pass of vLLM's start-up profile: which path a release takes, its bytes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capacity_planner import EngineSettings, GiB, ModelSpec, SettingError, plan, resolve_gpu
from capacity_planner.accounting.terms import (
    SAMPLER_BYTES_PER_LOGIT,
    sampler_bytes,
    sampler_path,
)
from capacity_planner.cli import main

DENSE = ModelSpec.from_name("Qwen/Qwen3-8B")
MOE = ModelSpec.from_name("Qwen/Qwen3-30B-A3B")
HYBRID = ModelSpec.from_name("Qwen/Qwen3-Next-80B-A3B-Instruct")


@pytest.mark.parametrize(
    ("model", "version", "path"),
    [
        (DENSE, "0.8.5", "pytorch"),  # V1 runner, FlashInfer an optional extra / opt-in
        (DENSE, "0.19.0", "pytorch"),
        (MOE, "0.10.2", "pytorch"),
        (DENSE, "0.28.0", "logits-only"),  # model runner V2 profiles the logits only
        (MOE, "0.28.0", "flashinfer"),  # MoE stays on the V1 runner, FlashInfer on
        (HYBRID, "0.28.0", "flashinfer"),
        (DENSE, "0.34.0", "flashinfer"),  # sized after the warm-up's full sampler pass
    ],
)
def test_each_release_takes_the_path_read_from_its_wheel(
    model: ModelSpec, version: str, path: str
) -> None:
    assert sampler_path(model, EngineSettings(vllm_version=version)) == path


def test_the_sampler_setting_overrides_the_release_default() -> None:
    s = EngineSettings(vllm_version="0.28.0", sampler="pytorch")
    assert sampler_path(DENSE, s) == "pytorch"
    assert sampler_bytes(DENSE, s, 256) == 37 * DENSE.vocab_size * 256


def test_an_unknown_sampler_is_refused_by_name() -> None:
    with pytest.raises(SettingError, match="sampler must be one of pytorch, flashinfer"):
        EngineSettings(sampler="native")


def test_the_sort_path_covers_the_allocation_vllm_failed_on() -> None:
    # vLLM issue #15105: the warm-up of 1024 dummy requests failed "to allocate 1.74 GiB" on
    # each of two ranks, one buffer of 12 bytes per logit (fp32 values + int64 indices) of
    # a 152,064-token vocabulary; the whole pass holds more than that one buffer.
    one_buffer = 1024 * 152_064 * 12
    assert round(one_buffer / GiB, 2) == 1.74
    assert SAMPLER_BYTES_PER_LOGIT["pytorch"] * 1024 * 152_064 > one_buffer
    assert SAMPLER_BYTES_PER_LOGIT["flashinfer"] < SAMPLER_BYTES_PER_LOGIT["pytorch"]


@settings(max_examples=40, deadline=None)
@given(
    seqs=st.integers(1, 4096),
    tp=st.sampled_from([1, 2, 4, 8]),
    path=st.sampled_from(["pytorch", "flashinfer", "logits-only"]),
)
def test_v1_pass_is_linear_in_sequences_and_held_by_every_rank(
    seqs: int, tp: int, path: str
) -> None:
    # V1 all-gathers the logits, so a rank's pass does not shrink with tensor parallelism.
    one = EngineSettings(vllm_version="0.28.0", sampler=path)
    many = EngineSettings(vllm_version="0.28.0", sampler=path, tensor_parallel_size=tp)
    assert sampler_bytes(MOE, many, seqs) == sampler_bytes(MOE, one, seqs)
    assert sampler_bytes(MOE, one, seqs) == seqs * sampler_bytes(MOE, one, 1)


def test_v0_keeps_one_row_of_logits_per_sequence_on_the_driver() -> None:
    s = EngineSettings(vllm_version="v0")
    assert sampler_bytes(DENSE, s, 256) == 256 * DENSE.vocab_size * 2


def test_the_path_moves_the_planned_activation_peak() -> None:
    gpu = resolve_gpu("RTX-4090")
    peaks = {
        path: plan(
            DENSE, gpu, EngineSettings(vllm_version="0.28.0", sampler=path)
        ).memory.activation_bytes
        for path in ("pytorch", "flashinfer", "logits-only")
    }
    assert peaks["pytorch"] > peaks["flashinfer"] > peaks["logits-only"]


def test_cli_takes_the_sampler_flag(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["plan", "Qwen/Qwen3-8B", "--gpu", "RTX-4090", "--vllm-version", "0.28.0"]
    args += ["--max-model-len", "8192"]
    assert main([*args, "--sampler", "pytorch"]) == 0
    assert "(pytorch)" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main([*args, "--sampler", "torch"])
