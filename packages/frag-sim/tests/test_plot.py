from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from frag_sim import SimConfig, SyntheticWorkload, simulate
from frag_sim.cli import main
from frag_sim.plot import (
    plot_admissions,
    plot_block_size,
    plot_usage_over_time,
    plot_waste_breakdown,
    plot_waste_over_time,
)


@pytest.fixture(scope="module")
def results() -> dict[str, object]:
    wl = SyntheticWorkload.from_mix("sharegpt", num_requests=150, rate=2.0).generate()
    return {p: simulate(wl, SimConfig(policy=p)) for p in ("max", "paged")}


@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_plots_are_byte_stable(tmp_path: Path, results: dict, suffix: str) -> None:  # type: ignore[type-arg]
    for fn in (plot_usage_over_time, plot_waste_breakdown, plot_admissions, plot_waste_over_time):
        a, b = tmp_path / f"a.{suffix}", tmp_path / f"b.{suffix}"
        fn(results, a)
        fn(results, b)
        assert a.stat().st_size > 1000
        assert a.read_bytes() == b.read_bytes(), fn.__name__
    c = tmp_path / f"bs.{suffix}"
    plot_block_size({"w": [(1, 1.0), (16, 0.99), (256, 0.9)]}, c)
    assert c.stat().st_size > 1000


def test_plot_rejects_unknown_suffix(tmp_path: Path, results: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        plot_usage_over_time(results, tmp_path / "x.jpg")
    assert not list(tmp_path.iterdir())


def test_cli_headline_plot(tmp_path: Path) -> None:
    out = tmp_path / "headline.png"
    assert main(["plot", "headline", "--quick", "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"
