from __future__ import annotations

import numpy as np
import pytest

from frag_sim import ConfigError, SimConfig, SyntheticWorkload, Workload, simulate
from frag_sim.engine.paged import PagedEngine
from frag_sim.engine.paged_fast import SingleSeqPagedEngine


def _wl(prompts: list[int], outputs: list[int], arrivals: list[float] | None = None) -> Workload:
    n = len(prompts)
    return Workload(
        "t",
        np.asarray(arrivals if arrivals else [0.0] * n, dtype=np.float64),
        np.asarray(prompts, np.int64),
        np.asarray(outputs, np.int64),
    )


def test_requests_longer_than_max_model_len_are_rejected_not_dropped() -> None:
    wl = _wl([10, 3000, 20], [5, 5, 5000])
    for policy in ("max", "paged"):
        r = simulate(wl, SimConfig(policy=policy, max_model_len=2048))
        assert r.completed == 1
        assert [i for i, _ in r.rejected] == [1, 2]
        assert "max_model_len=2048" in r.rejected[0][1]


def test_request_that_cannot_fit_memory_is_rejected_with_reason() -> None:
    wl = _wl([100, 10], [100, 10])
    r = simulate(
        wl, SimConfig(policy="paged", capacity_tokens=160, block_size=16, max_model_len=4096)
    )
    assert [i for i, _ in r.rejected] == [0] and "pool has 10" in r.rejected[0][1]
    r = simulate(wl, SimConfig(policy="exact", capacity_tokens=150, max_model_len=4096))
    assert [i for i, _ in r.rejected] == [0] and "buddy" in r.rejected[0][1]


def test_paged_returns_every_block_to_the_real_pool() -> None:
    wl = SyntheticWorkload.from_mix("capstone", num_requests=200, rate=20.0).generate()
    cfg = SimConfig(policy="paged", capacity_tokens=40_000, max_model_len=4500)
    eng = PagedEngine(wl, cfg)
    r = eng.run()
    assert r.preemptions > 0  # the run exercised preemption by recompute
    assert eng.pool.get_num_free_blocks() == cfg.num_gpu_blocks
    assert eng.owed == 0 and not eng.tables


def test_swap_costs_time_recompute_does_not_here() -> None:
    wl = SyntheticWorkload.from_mix("capstone", num_requests=150, rate=20.0).generate()
    base = SimConfig(policy="paged", capacity_tokens=40_000, max_model_len=4500)
    rec = simulate(wl, base)
    swap = simulate(wl, base.replace(preemption="swap", swap_time_per_block_s=1e-3))
    assert rec.preemptions > 0
    assert swap.sim_time_s > rec.sim_time_s
    small = simulate(wl, base.replace(preemption="swap", swap_time_per_block_s=1e-3, block_size=1))
    assert small.sim_time_s > swap.sim_time_s  # more, smaller blocks to move


def test_prefix_caching_shares_a_system_prompt() -> None:
    wl = SyntheticWorkload.from_mix(
        "alpaca", num_requests=300, rate=5.0, shared_prefix_len=256
    ).generate()
    base = SimConfig(policy="paged", capacity_tokens=20_000, max_model_len=2048)
    off = simulate(wl, base)
    on = simulate(wl, base.replace(enable_prefix_caching=True))
    assert off.prefix_hit_rate == 0 and off.sharing_saved == 0
    # each prompt is 256 shared + ~19 own tokens: 16 whole shared blocks hit after the first
    assert on.prefix_hit_rate > 0.8
    assert on.sharing_saved > 0.3
    assert on.completed == off.completed == 300
    total = sum(vars(on.breakdown).values())
    assert total == pytest.approx(1.0)


def test_breakdown_orders_policies_and_timeseries_shapes() -> None:
    wl = SyntheticWorkload.from_mix("sharegpt", num_requests=400, rate=2.0).generate()
    res = {p: simulate(wl, SimConfig(policy=p)) for p in ("max", "pow2", "exact", "paged")}
    tok = [res[p].breakdown.token_states for p in ("max", "pow2", "exact", "paged")]
    assert tok == sorted(tok)
    assert res["exact"].breakdown.internal == 0
    ts = res["paged"].timeseries
    assert ts is not None and len(ts.step) == len(ts.running) > 10
    assert np.all(np.diff(ts.step) > 0) and np.all(np.diff(ts.admitted_total) >= 0)
    assert ts.allocated_tokens.max() <= 15_728
    assert ts.running.max() == res["paged"].peak_running


@pytest.mark.parametrize(
    "kwargs",
    [
        {"policy": "lru"},
        {"capacity_tokens": 0},
        {"max_model_len": -1},
        {"block_size": 0},
        {"block_size": 2.5},
        {"step_time_s": 0.0},
        {"swap_time_per_block_s": -1.0},
        {"max_num_seqs": 0},
        {"allocator": "slab"},
        {"preemption": "kill"},
        {"policy": "max", "enable_prefix_caching": True},
        {"capacity_tokens": 8, "block_size": 16},
    ],
)
def test_bad_configs(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        SimConfig(**kwargs)  # type: ignore[arg-type]


def test_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(ConfigError, match="unknown config key"):
        SimConfig.from_dict({"policy": "paged", "blocksize": 16})
    with pytest.raises(TypeError):
        simulate("not a workload", SimConfig())  # type: ignore[arg-type]


def test_parallel_sampling_shares_prompt_blocks_in_the_scheduler() -> None:
    wl = SyntheticWorkload.from_mix("sharegpt", num_requests=300, rate=1.0).generate()
    one = simulate(wl, SimConfig(policy="paged"))
    four = simulate(wl, SimConfig(policy="paged", n=4))
    exact4 = simulate(wl, SimConfig(policy="exact", n=4))
    assert one.sharing_saved == 0
    assert 0.02 < four.sharing_saved < 0.5  # the shared full prompt blocks
    assert exact4.sharing_saved == 0  # reservations copy the prompt per sample
    assert four.mean_running > exact4.mean_running
    assert four.completed == one.completed
    assert "n=4" in four.config.label
    assert four.cow_copies > 0 and one.cow_copies == 0  # partial prompt tails were copied


def test_prefix_caching_run_returns_every_block_and_preempts_cleanly() -> None:
    wl = SyntheticWorkload.from_mix(
        "capstone", num_requests=150, rate=20.0, shared_prefix_len=512
    ).generate()
    cfg = SimConfig(
        policy="paged", capacity_tokens=40_000, max_model_len=5200, enable_prefix_caching=True
    )
    eng = PagedEngine(wl, cfg)
    r = eng.run()
    assert r.preemptions > 0 and r.completed == 150
    assert r.prefix_hit_rate > 0.1
    assert eng.owed == 0 and not eng.reqs
    assert eng.pool.get_num_free_blocks() == cfg.num_gpu_blocks  # cached blocks are free


@pytest.mark.parametrize(
    "extra",
    [
        {"preemption": "swap", "swap_time_per_block_s": 1e-3},
        {"prefill_time_per_token_s": 1e-4},
        {"max_num_seqs": 12},
        {"block_size": 1},
    ],
)
def test_hot_loop_matches_the_general_engine(extra: dict[str, object]) -> None:
    """simulate()'s inlined loop (no time series) against PagedEngine on the hooks."""
    wl = SyntheticWorkload.from_mix("capstone", num_requests=150, rate=20.0).generate()
    cfg = SimConfig.from_dict(
        {
            "policy": "paged",
            "capacity_tokens": 40_000,
            "max_model_len": 4500,
            "record_timeseries": False,
            **extra,
        }
    )
    eng = SingleSeqPagedEngine(wl, cfg)  # what simulate() runs for this config
    fast = eng.run()
    assert eng.pool.get_num_free_blocks() == eng.free == cfg.num_gpu_blocks
    assert eng.owed == 0 and not eng.tables and not eng.running
    gen = PagedEngine(wl, cfg).run()
    assert fast.preemptions > 0 or "max_num_seqs" in extra  # 12 at once fit in memory
    keep = [k for k in fast.summary() if k != "wall_s"]
    assert {k: fast.summary()[k] for k in keep} == {k: gen.summary()[k] for k in keep}
