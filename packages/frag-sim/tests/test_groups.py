"""Sequence groups in the scheduler: parallel sampling and beam search via fork + CoW."""

from __future__ import annotations

import numpy as np
import pytest
from _reference import random_workload
from hypothesis import given, settings
from hypothesis import strategies as st

from frag_sim import ConfigError, SimConfig, SimResult, SyntheticWorkload, Workload, simulate
from frag_sim.engine.paged import PagedEngine


def _run_clean(wl: Workload, cfg: SimConfig) -> SimResult:
    """Run and check that every block went back and the series matches the summary."""
    eng = PagedEngine(wl, cfg)
    r = eng.run()
    assert eng.pool.get_num_free_blocks() == cfg.num_gpu_blocks
    assert eng.owed == 0 and eng.lsync == 0 and eng.slack.now == 0
    assert eng.groups is None or not eng.groups.seqs  # every forked sequence was freed
    assert not eng.reqs and not eng.tables and not eng.parents
    assert r.completed + len(r.rejected) == len(wl)
    ts = r.timeseries
    assert ts is not None
    assert ts.allocated_tokens.max(initial=0) <= cfg.num_gpu_blocks * cfg.block_size
    tot, bd = ts.total(), r.breakdown
    for k in ("token_states", "reservation", "internal", "external", "idle"):
        assert getattr(tot, k) == pytest.approx(getattr(bd, k), abs=1e-12), k
    for v in ts.shares().values():
        assert np.all(v >= -1e-12)
    busy = ts.memory > ts.idle
    fig2 = sum(ts.waste_shares().values())
    np.testing.assert_allclose(fig2[busy], 1.0)
    assert np.all(fig2[~busy] == 0)
    return r


def test_fresh_parallel_groups_copy_each_partial_prompt_tail_once_per_extra_sample() -> None:
    n = 40
    wl = Workload(
        "t",
        np.arange(n, dtype=np.float64),
        np.full(n, 37, np.int64),  # 2 full blocks + a partial tail at block 16
        np.full(n, 20, np.int64),
    )
    r = _run_clean(wl, SimConfig(policy="paged", n=3, capacity_tokens=50_000))
    assert r.preemptions == 0
    assert r.cow_copies == 2 * n  # take_blocks_to_copy: one (src, dst) per extra sample


def test_beam_search_admits_preempts_and_frees_groups_under_pressure() -> None:
    wl = SyntheticWorkload.from_mix("sharegpt", num_requests=120, rate=4.0).generate()
    base = SimConfig(policy="paged", capacity_tokens=6_000, n=4)
    beam = _run_clean(wl, base.replace(use_beam_search=True))
    par = _run_clean(wl, base)
    assert beam.preemptions > 0 and par.preemptions > 0
    assert beam.completed == par.completed == 120 - len(beam.rejected)
    assert beam.cow_copies > par.cow_copies > 0
    # beams coalesce onto shared ancestors: more saved than parallel samples (Fig. 15)
    assert beam.sharing_saved > par.sharing_saved + 0.2
    assert beam.mean_running > par.mean_running
    assert "beam=4" in beam.config.label


def test_beam_selection_is_seeded() -> None:
    wl = SyntheticWorkload.from_mix("alpaca", num_requests=60, rate=2.0).generate()
    cfg = SimConfig(policy="paged", n=3, use_beam_search=True, capacity_tokens=3_000)
    a, b = simulate(wl, cfg), simulate(wl, cfg)
    c = simulate(wl, cfg.replace(seed=1))
    assert (a.cow_copies, a.preemptions, a.sharing_saved) == (
        b.cow_copies,
        b.preemptions,
        b.sharing_saved,
    )
    assert c.cow_copies != a.cow_copies


def test_parallel_sampling_with_prefix_caching() -> None:
    wl = SyntheticWorkload.from_mix(
        "alpaca", num_requests=200, rate=5.0, shared_prefix_len=256
    ).generate()
    base = SimConfig(policy="paged", capacity_tokens=20_000, n=3)
    off = _run_clean(wl, base)
    on = _run_clean(wl, base.replace(enable_prefix_caching=True))
    beam = _run_clean(wl, base.replace(enable_prefix_caching=True, use_beam_search=True))
    assert off.prefix_hit_rate == 0
    assert on.prefix_hit_rate > 0.8 and beam.prefix_hit_rate > 0.8
    assert on.sharing_saved > off.sharing_saved  # the system prompt is shared across groups
    assert on.completed == off.completed == beam.completed == 200


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    bs=st.sampled_from([1, 2, 4, 16]),
    blocks=st.integers(30, 120),
    width=st.integers(2, 4),
    beam=st.booleans(),
    caching=st.booleans(),
)
def test_groups_never_leak_and_stay_within_memory(
    seed: int, bs: int, blocks: int, width: int, beam: bool, caching: bool
) -> None:
    wl = random_workload(seed, 30, 20.0, 24, 30)
    cfg = SimConfig(
        policy="paged",
        block_size=bs,
        capacity_tokens=blocks * bs,
        max_model_len=64,
        n=width,
        use_beam_search=beam,
        enable_prefix_caching=caching,
        seed=seed,
    )
    _run_clean(wl, cfg)


@pytest.mark.parametrize(
    "kwargs", [{"use_beam_search": True}, {"n": 2, "seed": -1}, {"n": 2, "use_beam_search": 1}]
)
def test_bad_group_configs(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        SimConfig(**kwargs)  # type: ignore[arg-type]
