"""The reproductions: each experiment's checks are the paper's / seed's claims."""

from __future__ import annotations

from pathlib import Path

import pytest

from frag_sim import EXPERIMENTS, ConfigError, run_experiment


@pytest.mark.parametrize("quick", [False, True])
@pytest.mark.parametrize("name", ["lab02", "capstone", "fig2", "fig13"])
def test_synthetic_reproductions_hold(name: str, quick: bool) -> None:
    rep = run_experiment(name, quick=quick)  # the root demo runs the quick ones
    failed = [d for d, ok in rep.checks if not ok]
    assert not failed, rep.render()
    text = rep.render()
    assert "config" in text.splitlines()[1]  # numbers printed beside their config


def test_fig13_levels() -> None:
    rep = run_experiment("fig13")
    mx, paged = rep.results["max"], rep.results["paged"]
    assert mx.peak_running == 7  # 15,728 // 2048
    assert 6.5 < mx.mean_running <= 7.0
    assert paged.mean_running == pytest.approx(30.42, abs=4)


def test_fig2_levels_close_to_paper() -> None:
    rep = run_experiment("fig2")
    paper = {"max": 20.4, "pow2": 26.8, "exact": 38.2, "paged": 96.3}
    for p, want in paper.items():
        got = rep.results[p].breakdown.fig2_row()["token_states"]
        assert got == pytest.approx(want, abs=4.0), p
    mx = rep.results["max"].breakdown.fig2_row()
    assert mx["internal"] == pytest.approx(57.3, abs=3)  # the dominant Max waste
    assert mx["external"] == pytest.approx(8.9, abs=1)  # (15,728 - 7 x 2048) / 15,728


def test_lab02_explains_the_inconsistency() -> None:
    rep = run_experiment("lab02")
    assert rep.ok
    assert any("87.5%" in n for n in rep.notes)


@pytest.mark.traces
@pytest.mark.slow
def test_block_size_and_prefix_on_traces_quick(trace_dir: Path) -> None:
    rep = run_experiment("block_size", quick=True, trace_dir=str(trace_dir))
    assert rep.ok, rep.render()
    assert {r["workload"].split("[")[0] for r in rep.rows} >= {"azure2023_conv"}
    pre = run_experiment("prefix", quick=True, trace_dir=str(trace_dir))
    assert pre.ok, pre.render()


@pytest.mark.traces
@pytest.mark.slow
def test_offload_tier_raises_the_hit_rate_quick(trace_dir: Path) -> None:
    rep = run_experiment("offload", quick=True, trace_dir=str(trace_dir))
    assert rep.ok, rep.render()
    conv = {k: r for k, r in rep.results.items() if k.startswith("mooncake_conversation/262144")}
    none, biggest = conv["mooncake_conversation/262144/0"], conv[max(conv, key=len)]
    assert none.cpu_hit_rate == 0 and biggest.cpu_hit_rate > 0
    assert biggest.prefix_hit_rate > none.prefix_hit_rate


def test_cpu_tier_config_is_checked() -> None:
    from frag_sim import SimConfig

    for bad, msg in (
        ({"cpu_cache_tokens": 64}, "needs enable_prefix_caching"),
        ({"cpu_cache_tokens": -1, "enable_prefix_caching": True}, ">= 0"),
        ({"cpu_cache_tokens": 64, "enable_prefix_caching": True, "n": 2}, "n=1"),
        ({"cpu_cache_tokens": 8, "enable_prefix_caching": True}, "holds no block"),
    ):
        with pytest.raises(ConfigError, match=msg):
            SimConfig(**bad)  # type: ignore[arg-type]


def test_fig15_sharing_quick() -> None:
    rep = run_experiment("fig15", quick=True)
    assert rep.ok, rep.render()


def test_groups_in_the_scheduler_quick() -> None:
    rep = run_experiment("groups", quick=True)
    assert rep.ok, rep.render()
    beam4 = rep.results["paged beam=4"]
    assert beam4.preemptions > 0  # groups were preempted and re-admitted under pressure
    assert beam4.completed == beam4.num_requests - len(beam4.rejected)


def test_registry_and_unknown_name() -> None:
    assert set(EXPERIMENTS) == {
        "lab02",
        "capstone",
        "fig2",
        "fig13",
        "block_size",
        "prefix",
        "offload",
        "fig15",
        "groups",
    }
    with pytest.raises(ConfigError, match="unknown experiment"):
        run_experiment("fig99")
