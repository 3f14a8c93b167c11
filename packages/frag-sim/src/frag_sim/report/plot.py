"""Figures (matplotlib object API, headless, byte-stable PNG and SVG).

Imported only when plotting: ``pip install frag-sim[plot]``. Every figure is written
atomically; the format comes from the suffix (``.png`` or ``.svg``). Byte stability:
a fixed ``svg.hashsalt``, no ``Date``/``Software`` metadata, fixed DPI and size.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .io import atomic_write
from .metrics import SimResult

__all__ = [
    "plot_admissions",
    "plot_block_size",
    "plot_usage_over_time",
    "plot_waste_breakdown",
    "plot_waste_over_time",
]

_COLORS = {
    "token_states": "#4c72b0",
    "reservation": "#dd8452",
    "internal": "#c44e52",
    "external": "#8c8c8c",
}
_IDLE = "#e6e6e6"
_BAND_LABELS = {"idle": "idle (free, nobody waiting)"}


def _figure(w: float = 7.0, h: float = 4.0) -> Any:
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:  # pragma: no cover - exercised only without the extra
        raise ImportError("plotting needs matplotlib: pip install 'frag-sim[plot]'") from exc
    return Figure(figsize=(w, h), dpi=100, layout="constrained")


def _save(fig: Any, path: str | os.PathLike[str]) -> Path:
    import matplotlib

    fmt = Path(path).suffix.lower().lstrip(".")
    if fmt not in ("png", "svg"):
        raise ValueError(f"plot path must end in .png or .svg, got {str(path)!r}")
    meta: dict[str, Any] = {"Date": None} if fmt == "svg" else {"Software": None}
    if fmt == "svg":
        meta["Creator"] = None
    buf = io.BytesIO()
    with matplotlib.rc_context({"svg.hashsalt": "frag-sim", "svg.fonttype": "path"}):
        fig.savefig(buf, format=fmt, metadata=meta)
    data = buf.getvalue()
    return atomic_write(path, lambda fh: fh.write(data))


def _series(r: SimResult) -> Any:
    if r.timeseries is None:
        raise ValueError(f"{r.config.label}: run with record_timeseries=True to plot over time")
    return r.timeseries


def _two_panels(
    results: Mapping[str, SimResult],
    curves: Callable[[SimResult, Any], tuple[Any, Any]],
    ylabels: tuple[str, str],
    lw_bottom: float,
) -> tuple[Any, Any, Any]:
    """Two stacked step plots over simulated time, one line per result in each."""
    fig = _figure(8.0, 5.0)
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    for label, r in results.items():
        ts = _series(r)
        top, bottom = curves(r, ts)
        ax1.step(ts.time_s, top, where="post", lw=1.2, label=label)
        ax2.step(ts.time_s, bottom, where="post", lw=lw_bottom, label=label)
    ax1.set_ylabel(ylabels[0])
    ax2.set_ylabel(ylabels[1])
    ax2.set_xlabel("simulated time (s)")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
    return fig, ax1, ax2


def plot_usage_over_time(
    results: Mapping[str, SimResult],
    path: str | os.PathLike[str],
    title: str = "KV memory over time",
) -> Path:
    """Top: allocated share of memory; bottom: live tokens / allocated slots."""

    def usage(r: SimResult, ts: Any) -> tuple[Any, Any]:
        alloc = ts.allocated_tokens.astype(float)
        util = np.divide(ts.live_tokens, alloc, out=np.zeros_like(alloc), where=alloc > 0)
        return 100 * alloc / r.config.capacity_tokens, 100 * util

    fig, ax1, ax2 = _two_panels(
        results, usage, ("allocated (% of memory)", "live tokens / allocated (%)"), 1.2
    )
    for ax in (ax1, ax2):
        ax.set_ylim(0, 105)
    ax1.legend(loc="lower right", fontsize=8)
    ax1.set_title(title)
    return _save(fig, path)


def plot_waste_breakdown(
    results: Mapping[str, SimResult],
    path: str | os.PathLike[str],
    paper: Mapping[str, Sequence[float]] | None = None,
    title: str = "Where KV memory goes (PagedAttention Fig. 2 style)",
) -> Path:
    """Stacked bars: token states / reservation / internal / external (busy memory, %)."""
    fig = _figure(8.0, 0.9 + 0.55 * len(results) * (2 if paper else 1))
    ax = fig.subplots()
    labels: list[str] = []
    rows: list[list[float]] = []
    for label, r in results.items():
        f = r.breakdown.fig2_row()
        rows.append([f[k] for k in _COLORS])
        labels.append(label)
        if paper and label in paper:
            rows.append(list(paper[label]))
            labels.append(f"{label} (paper)")
    y = np.arange(len(rows))[::-1]
    left = np.zeros(len(rows))
    data = np.array(rows)
    for j, (key, color) in enumerate(_COLORS.items()):
        ax.barh(
            y,
            data[:, j],
            left=left,
            color=color,
            label=key.replace("_", " "),
            edgecolor="white",
            height=0.7,
        )
        for yi, lf, v in zip(y, left, data[:, j], strict=False):
            if v >= 6:
                ax.text(
                    lf + v / 2, yi, f"{v:.1f}", ha="center", va="center", fontsize=7, color="white"
                )
        left += data[:, j]
    ax.set_yticks(y, labels, fontsize=8)
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of KV memory (busy steps)")
    ax.legend(ncols=4, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18))
    ax.set_title(title)
    return _save(fig, path)


def plot_waste_over_time(
    results: Mapping[str, SimResult],
    path: str | os.PathLike[str],
    title: str = "Where KV memory goes over time",
) -> Path:
    """One panel per result: the Breakdown split of memory per event window, stacked.

    Bands are the time series' exact window integrals (``Timeseries.shares``): token
    states, reservation, internal and external fragmentation, and idle memory (free while
    nobody waits), which fill 100 %. Each panel has its own time axis: a policy that
    queues for long does not squeeze the others.
    """
    fig = _figure(8.0, 1.0 + 2.0 * len(results))
    axes = fig.subplots(len(results), 1, sharex=False, squeeze=False)[:, 0]
    for ax, (label, r) in zip(axes, results.items(), strict=True):
        ts = _series(r)
        sh = ts.shares()
        # a window spans [time_s, next time_s): draw it as a step held to its end
        x = np.append(ts.time_s, r.sim_time_s + ts.time_s[0] if len(ts) else 0.0)
        lo = np.zeros(len(ts))
        for key, color in (*_COLORS.items(), ("idle", _IDLE)):
            hi = lo + 100 * sh[key]
            ax.fill_between(
                x,
                np.append(lo, lo[-1:]),
                np.append(hi, hi[-1:]),
                step="post",
                color=color,
                lw=0,
                label=_BAND_LABELS.get(key, key.replace("_", " ")),
            )
            lo = hi
        f = r.breakdown.fig2_row()
        ax.set_title(
            f"{label}: token states {f['token_states']:.1f} %, waste "
            f"{f['reservation'] + f['internal'] + f['external']:.1f} % of busy memory",
            fontsize=9,
        )
        ax.set_ylim(0, 100)
        ax.set_xlim(x[0], x[-1])
        ax.set_ylabel("% of memory")
        ax.set_xlabel("simulated time (s)", fontsize=8)
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, ncols=5, fontsize=7, loc="outside lower center")
    fig.suptitle(title)
    return _save(fig, path)


def plot_block_size(
    curves: Mapping[str, Sequence[tuple[int, float]]],
    path: str | os.PathLike[str],
    title: str = "Block size trade-off: live tokens / allocated slots",
) -> Path:
    """One line per workload: (block_size, live/allocated) points, log2 x axis."""
    fig = _figure(7.0, 4.0)
    ax = fig.subplots()
    for label, pts in curves.items():
        xs, ys = zip(*sorted(pts), strict=False)
        ax.plot(xs, [100 * v for v in ys], marker="o", ms=3, lw=1.2, label=label)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("block size (tokens)")
    ax.set_ylabel("live / allocated (%)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(title)
    return _save(fig, path)


def plot_admissions(
    results: Mapping[str, SimResult],
    path: str | os.PathLike[str],
    title: str = "Admissions and running requests over time",
) -> Path:
    """One row per result, each on its own time axis: cumulative admissions (re-admissions
    after preemption drawn apart from first admissions) and requests running at once."""
    fig = _figure(8.0, 0.8 + 1.9 * len(results))
    axes = fig.subplots(len(results), 2, squeeze=False)
    for (ax1, ax2), (label, r) in zip(axes, results.items(), strict=True):
        ts = _series(r)
        first = ts.admitted_total - ts.preemptions_total  # every preemption re-admits once
        ax1.step(ts.time_s, ts.admitted_total, where="post", lw=1.2, label="all admissions")
        ax1.step(ts.time_s, first, where="post", lw=1.0, ls="--", label="first admissions")
        ax1.set_title(
            f"{label}: {r.admissions:,} admissions, {r.preemptions:,} of them "
            "re-admissions after preemption",
            fontsize=8,
        )
        ax1.set_ylabel("admissions", fontsize=8)
        ax1.legend(fontsize=7, loc="lower right")
        ax2.step(ts.time_s, ts.running, where="post", lw=1.0, color="#55a868")
        ax2.set_title(f"{label}: running (peak {r.peak_running})", fontsize=8)
        for ax in (ax1, ax2):
            ax.grid(alpha=0.3)
            ax.set_xlabel("simulated time (s)", fontsize=8)
    fig.suptitle(title)
    return _save(fig, path)
