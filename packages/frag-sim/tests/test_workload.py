from __future__ import annotations

import math

import numpy as np
import pytest

from frag_sim import ConfigError, EmptyTraceError, LengthDist, SyntheticWorkload, Workload


def test_capstone_mix_bounds_and_determinism() -> None:
    a = SyntheticWorkload.from_mix("capstone", num_requests=2000, rate=4.0, seed=1).generate()
    b = SyntheticWorkload.from_mix("capstone", num_requests=2000, rate=4.0, seed=1).generate()
    assert np.array_equal(a.prompt_len, b.prompt_len)
    assert np.array_equal(a.arrival_s, b.arrival_s)
    assert a.prompt_len.min() >= 200 and a.prompt_len.max() <= 4000
    assert a.output_len.min() >= 50 and a.output_len.max() <= 500
    assert abs(a.prompt_len.mean() - 2100) < 60
    assert a.stats()["rate_per_s"] == pytest.approx(4.0, rel=0.08)


def test_burstiness_changes_interarrival_cv() -> None:
    def cv(b: float) -> float:
        w = SyntheticWorkload(num_requests=20_000, rate=5.0, burstiness=b, seed=2).generate()
        g = np.diff(w.arrival_s)
        return float(g.std() / g.mean())

    assert cv(1.0) == pytest.approx(1.0, abs=0.05)  # Poisson
    assert cv(0.25) == pytest.approx(2.0, abs=0.15)  # gamma shape k: cv = 1/sqrt(k)
    assert cv(4.0) == pytest.approx(0.5, abs=0.05)


def test_sharegpt_mix_matches_paper_means() -> None:
    w = SyntheticWorkload.from_mix("sharegpt", num_requests=50_000, rate=1.0).generate()
    assert w.prompt_len.mean() == pytest.approx(161.31, rel=0.05)
    assert w.output_len.mean() == pytest.approx(337.99, rel=0.05)


def test_infinite_rate_puts_everything_at_zero() -> None:
    w = SyntheticWorkload(num_requests=10, rate=math.inf).generate()
    assert not w.arrival_s.any()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rate": 0.0},
        {"rate": -1.0},
        {"rate": math.nan},
        {"num_requests": 0},
        {"burstiness": 0.0},
        {"burstiness": math.inf},
        {"shared_prefix_len": -1},
    ],
)
def test_bad_synthetic_parameters(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        SyntheticWorkload(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "uniform", "low": 0, "high": 5},
        {"kind": "uniform", "low": 6, "high": 5},
        {"kind": "lognormal", "mean": 0.5},
        {"kind": "lognormal", "mean": 10, "cv": 0},
        {"kind": "weird"},
        {"min_len": 0},
    ],
)
def test_bad_length_distributions(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        LengthDist(**kwargs)  # type: ignore[arg-type]


def test_workload_validation() -> None:
    one = np.array([1], dtype=np.int64)
    with pytest.raises(EmptyTraceError):
        Workload("e", np.array([]), np.array([], dtype=np.int64), np.array([], dtype=np.int64))
    with pytest.raises(ConfigError, match="sorted"):
        Workload("x", np.array([1.0, 0.0]), np.ones(2, np.int64), np.ones(2, np.int64))
    with pytest.raises(ConfigError, match=">= 1"):
        Workload("x", np.array([0.0]), np.array([0], dtype=np.int64), one)
    with pytest.raises(ConfigError, match="unknown length mix"):
        SyntheticWorkload.from_mix("nope")
    w = Workload("ok", np.array([0.0, 1.0]), np.ones(2, np.int64), np.ones(2, np.int64))
    assert len(w.head(1)) == 1
    with pytest.raises(ConfigError):
        w.head(0)
