"""The experiments stage: named reproductions and sweeps, each run through the engine.

Each reproduction prints its numbers beside the config that produced them: ``synthetic``
holds the runs on synthetic streams (the Phase 02 lab-02 case, the capstone, PagedAttention
Figs. 2, 13 and 15), ``real_traces`` those on the public traces (block size, Mooncake
prefix sharing, the CPU offload tier), ``groups`` parallel sampling and beam search in
the scheduler; ``sweep`` runs grids of policies, block sizes, capacities, traces and seeds,
in-process or on a dask cluster. This module is the registry.

``EXPERIMENTS[name].run(quick=...)`` returns an :class:`ExperimentReport` whose ``checks``
are the relations the paper or the course claims (tests assert them). Sources: PagedAttention
(Kwon et al., SOSP 2023) §3.1 Fig. 2, §6.2 Fig. 13, §6.3 Figs. 14-15, §7.2 Fig. 18b,
Table 1; the Phase 02 labs (lab-02); the "PagedAttention from scratch in 300 lines"
capstone (step 05); the Mooncake (FAST'25) traces. ``quick``
shrinks request counts for tests; the documented numbers use the full runs.
"""

from __future__ import annotations

from ..errors import ConfigError
from ..report.experiment import Experiment, ExperimentReport
from .groups import _groups
from .real_traces import (
    BLOCK_SIZES,
    TRACE_SCENARIOS,
    _block_size,
    _offload,
    _prefix,
    trace_config,
)
from .synthetic import (
    FIG_CAPACITY,
    PAPER_FIG2,
    PAPER_FIG13,
    PAPER_FIG15,
    _capstone,
    _fig2,
    _fig13,
    _fig15,
    _lab02,
)

__all__ = [
    "BLOCK_SIZES",
    "EXPERIMENTS",
    "FIG_CAPACITY",
    "PAPER_FIG2",
    "PAPER_FIG13",
    "PAPER_FIG15",
    "TRACE_SCENARIOS",
    "Experiment",
    "ExperimentReport",
    "run_experiment",
    "trace_config",
]

EXPERIMENTS: dict[str, Experiment] = {
    e.name: e
    for e in (
        Experiment("lab02", "Phase 02 lab-02: 8 vs 64 admissions, 94% vs ~0 waste", _lab02),
        Experiment("capstone", "capstone workload: naive ~50% waste, paged ~100%", _capstone),
        Experiment("fig2", "PagedAttention Fig. 2 waste breakdown", _fig2),
        Experiment("fig13", "PagedAttention Fig. 13: max admits 7, paged ~30", _fig13),
        Experiment("block_size", "block size 1..512 on every trace", _block_size),
        Experiment("prefix", "Mooncake prefix sharing and hit rate vs cache size", _prefix),
        Experiment("offload", "Mooncake hit rate vs GPU cache and CPU tier size", _offload),
        Experiment("fig15", "PagedAttention Fig. 15: sharing via fork + CoW", _fig15),
        Experiment("groups", "parallel sampling and beam search in the scheduler", _groups),
    )
}


def run_experiment(
    name: str, *, quick: bool = False, trace_dir: str | None = None
) -> ExperimentReport:
    """Run the named reproduction; ``quick`` shrinks it for tests."""
    if name not in EXPERIMENTS:
        raise ConfigError(f"unknown experiment {name!r}; known: {sorted(EXPERIMENTS)}")
    return EXPERIMENTS[name].run(quick=quick, trace_dir=trace_dir)
