"""Parallel sampling and beam search in the scheduler (PagedAttention §4.4, §6.3, Fig. 14).

Unlike ``fig15`` (``simulate_sharing``: one group at a time on its own pool), these runs
put whole sequence groups through continuous batching on one shared memory: groups are
admitted FCFS when all their sequences fit, forked on the real ``KVCacheManager``,
preempted together (most recent first) and freed together.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from ..engine.simulator import simulate
from ..report.experiment import ExperimentReport
from ..report.experiment import row as _row
from ..report.metrics import SimResult
from ..workload.requests import SyntheticWorkload
from .synthetic import FIG_CONFIG, PAPER_FIG15

WIDTHS = (2, 4, 6)


def groups_runs(quick: bool = False) -> dict[str, SimResult]:
    """Alpaca-like (paper Fig. 14's dataset), memory-bound at 150 req/s on 15,728 slots."""
    wl = SyntheticWorkload.from_mix(
        "alpaca", num_requests=400 if quick else 1000, rate=150.0, seed=0, name="alpaca-like"
    ).generate()
    base = FIG_CONFIG.replace(record_timeseries=False)
    runs = {"exact n=1": simulate(wl, base.replace(policy="exact"))}
    runs["paged n=1"] = simulate(wl, base)
    for w in WIDTHS:
        runs[f"exact n={w}"] = simulate(wl, base.replace(policy="exact", n=w))
        runs[f"paged n={w}"] = simulate(wl, base.replace(n=w))
        runs[f"paged beam={w}"] = simulate(wl, base.replace(n=w, use_beam_search=True))
    return runs


def _groups(quick: bool = False, **_: Any) -> ExperimentReport:
    runs = groups_runs(quick)
    rows = [
        _row(
            r,
            case=k,
            saved_pct=round(100 * r.sharing_saved, 1),
            cow_copies=r.cow_copies,
            paper_saved_pct=""
            if k.startswith("exact")
            else PAPER_FIG15.get(("beam" if "beam" in k else "parallel", r.config.n), ""),
        )
        for k, r in runs.items()
    ]
    mean = {k: r.mean_running for k, r in runs.items()}
    saved = {k: 100 * r.sharing_saved for k, r in runs.items()}
    checks = [
        (
            f"width {w}: requests running at once exact < paged parallel < paged beam",
            mean[f"exact n={w}"] < mean[f"paged n={w}"] < mean[f"paged beam={w}"],
        )
        for w in WIDTHS
    ]
    checks.append(
        (
            "memory saved grows with width (parallel and beam)",
            all(
                saved[f"paged {m}={a}"] < saved[f"paged {m}={b}"]
                for m in ("n", "beam")
                for a, b in pairwise(WIDTHS)
            ),
        )
    )
    checks.append(
        (
            "beam search in the scheduler saves within 10 points of the paper (37.6-55.2%)",
            all(abs(saved[f"paged beam={w}"] - PAPER_FIG15[("beam", w)]) <= 10 for w in WIDTHS),
        )
    )
    checks.append(
        (
            "contiguous reservations share nothing; every paged group copied its prompt tail",
            all(runs[f"exact n={w}"].sharing_saved == 0 for w in WIDTHS)
            and all(runs[f"paged n={w}"].cow_copies > 0 for w in WIDTHS),
        )
    )
    notes = [
        "fork + copy-on-write on one real KVCacheManager shared by all running groups; "
        "beam selection: every step each beam slot picks a parent beam uniformly (ours); "
        "the paper column is Fig. 15's Alpaca saving, measured by vLLM one group at a time",
    ]
    return ExperimentReport(
        "groups",
        "parallel sampling and beam search in the scheduler",
        rows,
        checks,
        notes,
        runs,
    )
