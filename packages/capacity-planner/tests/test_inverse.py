"""Inverse questions are answered exactly: the forward plan confirms each answer."""

from __future__ import annotations

import dataclasses

import pytest

from capacity_planner import ModelSpec, SettingError, gpu_from_name
from capacity_planner.accounting.startup import EngineSettings
from capacity_planner.inverse import (
    max_model_len_that_fits,
    required_gpus,
    required_tensor_parallel,
    required_utilization,
)
from capacity_planner.plan import plan

LLAMA = ModelSpec.from_name("meta-llama/Llama-3.1-8B-Instruct")
H100 = gpu_from_name("H100")


def test_required_utilization_is_minimal() -> None:
    res = required_utilization(LLAMA, H100, 32, 8192)
    assert res.feasible and isinstance(res.answer, float)
    s = EngineSettings(max_model_len=8192)
    at = plan(LLAMA, H100, dataclasses.replace(s, gpu_memory_utilization=res.answer))
    below = plan(LLAMA, H100, dataclasses.replace(s, gpu_memory_utilization=res.answer - 0.001))
    assert at.kv.max_concurrency >= 32 > below.kv.max_concurrency


def test_required_utilization_infeasible() -> None:
    res = required_utilization(LLAMA, gpu_from_name("L4"), 100, 32768)
    assert not res.feasible and res.answer is None and "1.0" in res.explanation


def test_required_tp_and_gpus() -> None:
    big = ModelSpec.from_name("meta-llama/Llama-3.1-70B-Instruct")
    tp = required_tensor_parallel(big, H100, 10, 32768)
    assert tp.feasible and tp.answer == 4 and tp.plan is not None
    assert tp.plan.kv.max_concurrency >= 10
    small = plan(big, H100, EngineSettings(max_model_len=32768, tensor_parallel_size=2))
    assert small.kv.max_concurrency < 10
    gpus = required_gpus(big, H100, 10, 32768)
    assert gpus.feasible and gpus.answer == 4


def test_max_model_len_that_fits_is_the_boundary() -> None:
    l4 = gpu_from_name("L4")
    res = max_model_len_that_fits(LLAMA, l4)
    assert res.feasible and isinstance(res.answer, int) and 0 < res.answer < 131072
    assert plan(LLAMA, l4, EngineSettings(max_model_len=res.answer)).kv.fits
    assert not plan(LLAMA, l4, EngineSettings(max_model_len=res.answer + 1)).kv.fits


def test_bad_targets() -> None:
    with pytest.raises(SettingError, match="concurrency"):
        required_utilization(LLAMA, H100, 0, 8192)
    with pytest.raises(SettingError, match="context length"):
        required_tensor_parallel(LLAMA, H100, 1, -5)
