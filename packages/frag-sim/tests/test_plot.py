from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

from frag_sim import SimConfig, SyntheticWorkload, simulate
from frag_sim.cli import main
from frag_sim.report.plot import (
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


def test_plots_label_idle_and_readmissions_on_own_scales(
    monkeypatch: pytest.MonkeyPatch,
    results: dict,  # type: ignore[type-arg]
) -> None:
    from frag_sim.report import plot

    figs: list[object] = []
    monkeypatch.setattr(plot, "_save", lambda fig, path: figs.append(fig) or Path(path))
    plot_waste_over_time(results, "w.png")
    plot_admissions(results, "a.png")
    waste, adm = figs
    legend = [t.get_text() for t in waste.legends[0].get_texts()]  # type: ignore[attr-defined]
    assert "idle (free, nobody waiting)" in legend
    limits = [ax.get_xlim()[1] for ax in waste.axes]  # type: ignore[attr-defined]
    assert limits[0] > 1.2 * limits[1]  # max queues for longer; paged keeps its own axis
    titles = [ax.get_title() for ax in adm.axes]  # type: ignore[attr-defined]
    paged = results["paged"]
    assert f"{paged.preemptions:,} of them re-admissions after preemption" in " ".join(titles)
    assert len({ax.get_xlim() for ax in adm.axes[::2]}) == 2  # type: ignore[attr-defined]
