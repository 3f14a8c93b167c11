"""The event-jumping engine must agree exactly with a token-by-token reference."""

from __future__ import annotations

import numpy as np
import pytest
from _reference import reference
from hypothesis import given, settings
from hypothesis import strategies as st

from frag_sim import SimConfig, Workload, simulate


def _workload(seed: int, n: int, rate: float, pmax: int, omax: int) -> Workload:
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1 / rate, n)
    gaps[0] = 0
    return Workload(
        "rand",
        np.cumsum(gaps),
        rng.integers(1, pmax + 1, n).astype(np.int64),
        rng.integers(1, omax + 1, n).astype(np.int64),
    )


def _check(wl: Workload, cfg: SimConfig) -> None:
    got = simulate(wl, cfg)
    ref = reference(wl, cfg)
    assert got.admissions == ref.admissions
    assert got.preemptions == ref.preemptions
    assert got.peak_running == ref.peak
    assert got.busy_steps == ref.busy
    assert got.completed == ref.completed
    assert len(got.rejected) == ref.rejected
    assert got.mean_running == pytest.approx(ref.run_steps / max(ref.busy, 1))
    if ref.busy:
        bd = got.breakdown
        saved = ref.alloc - ref.physical  # parallel samples share full prompt blocks
        cap = cfg.capacity_tokens * ref.busy + saved
        assert bd.token_states == pytest.approx(ref.live / cap)
        assert bd.token_states + bd.reservation + bd.internal == pytest.approx(ref.alloc / cap)
        assert got.token_usage == pytest.approx(ref.live / ref.alloc)
        assert got.sharing_saved == pytest.approx(saved / ref.alloc)
        total = bd.token_states + bd.reservation + bd.internal + bd.external + bd.idle
        assert total == pytest.approx(1.0)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    bs=st.sampled_from([1, 2, 3, 4, 8, 16]),
    blocks=st.integers(8, 60),
    rate=st.sampled_from([0.5, 5.0, 50.0]),
    n=st.sampled_from([1, 1, 2, 3]),
)
def test_paged_matches_reference(seed: int, bs: int, blocks: int, rate: float, n: int) -> None:
    wl = _workload(seed, 40, rate, 30, 40)
    cfg = SimConfig(
        n=n,
        policy="paged",
        block_size=bs,
        capacity_tokens=blocks * bs * n + (seed % bs),
        max_model_len=64,
        step_time_s=0.1,
    )
    _check(wl, cfg)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    policy=st.sampled_from(["max", "pow2", "exact"]),
    cap=st.integers(64, 400),
    rate=st.sampled_from([0.5, 5.0, 50.0]),
    n=st.sampled_from([1, 2]),
)
def test_contiguous_matches_reference(
    seed: int, policy: str, cap: int, rate: float, n: int
) -> None:
    wl = _workload(seed, 40, rate, 30, 30)
    # first-fit with one size class per request can still fragment; the reference counts
    # slots only, so compare on 'max' (equal chunks never fragment) and check the others'
    # invariants below.
    cfg = SimConfig(
        policy=policy,
        capacity_tokens=cap,
        max_model_len=64,  # type: ignore[arg-type]
        allocator="first_fit",
        step_time_s=0.1,
        n=n,
    )
    if policy == "max":
        _check(wl, cfg)
    else:
        got = simulate(wl, cfg)
        ref = reference(wl, cfg)
        assert got.completed == ref.completed
        assert got.admissions == got.completed  # reservations never preempt
        bd = got.breakdown
        assert bd.token_states + bd.reservation + bd.internal + bd.external + bd.idle == (
            pytest.approx(1.0)
        )


def test_max_num_seqs_matches_reference() -> None:
    wl = _workload(7, 60, 20.0, 20, 30)
    _check(
        wl,
        SimConfig(
            policy="paged", block_size=4, capacity_tokens=400, max_model_len=64, max_num_seqs=5
        ),
    )
