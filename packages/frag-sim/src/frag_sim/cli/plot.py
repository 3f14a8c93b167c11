"""``frag-sim plot``: regenerate the README figures from the named experiments."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import FragSimError
from ..experiments import run_experiment
from .util import run_progress

__all__ = ["cmd_plot"]


def cmd_plot(a: argparse.Namespace) -> int:
    from ..experiments import PAPER_FIG2
    from ..report import plot as P

    kinds = (
        ["headline", "waste", "waste-over-time", "block-size", "admissions"]
        if a.kind == "all"
        else [a.kind]
    )
    fmts = [f.strip() for f in a.formats.split(",") if f.strip()]
    bad = [f for f in fmts if f not in ("png", "svg")]
    if bad or not fmts:
        raise FragSimError(f"--formats must be a comma list of png, svg; got {a.formats!r}")
    if a.out and len(kinds) == 1:
        paths = {kinds[0]: [Path(a.out)]}
    else:
        paths = {k: [Path(a.out_dir) / f"{k}.{f}" for f in fmts] for k in kinds}
    for kind in kinds:
        _plot_one(P, kind, paths[kind], a, PAPER_FIG2)
        for path in paths[kind]:
            print(path)
    return 0


def _plot_one(P: Any, kind: str, paths: list[Path], a: argparse.Namespace, fig2: Any) -> None:
    with run_progress(f"plot {kind}", None):
        if kind in ("headline", "waste-over-time"):
            rep = run_experiment("capstone", quick=a.quick)
            res = {
                "naive (max reservation)": rep.results["max"],
                "paged (block 16)": rep.results["paged"],
            }
            for path in paths:
                if kind == "headline":
                    P.plot_usage_over_time(
                        res, path, title="Capstone workload: naive contiguous vs paged KV cache"
                    )
                else:
                    P.plot_waste_over_time(
                        res, path, title="Capstone workload: where KV memory goes over time"
                    )
        elif kind == "waste":
            rep = run_experiment("fig2", quick=a.quick)
            for path in paths:
                P.plot_waste_breakdown(rep.results, path, paper=fig2)
        elif kind == "admissions":
            rep = run_experiment("fig13", quick=a.quick)
            sel = {k: rep.results[k] for k in ("max", "exact", "paged")}
            for path in paths:
                P.plot_admissions(sel, path, title="ShareGPT-like at 2 req/s on 15,728 slots")
        else:
            rep = run_experiment("block_size", quick=a.quick, trace_dir=a.trace_dir)
            for m in rep.missing:
                print(f"frag-sim: {m}", file=sys.stderr)
            curves: dict[str, list[tuple[int, float]]] = {}
            for key, r in rep.results.items():
                name, bs = key.rsplit("/", 1)
                curves.setdefault(name, []).append((int(bs), r.token_usage))
            for path in paths:
                P.plot_block_size(curves, path)
