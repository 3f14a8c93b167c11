"""KV-cache fragmentation simulator: contiguous reservation vs paged allocation on real traces.

Replays a request stream under four policies on one memory budget (PagedAttention §3,
§6.1): contiguous ``max`` / ``pow2`` / ``exact`` reservations over a real first-fit or buddy
address space, and ``paged`` blocks from ``block_allocator.KVCacheManager``.

    >>> from frag_sim import SimConfig, SyntheticWorkload, simulate
    >>> wl = SyntheticWorkload.from_mix("sharegpt", num_requests=200, rate=2.0).generate()
    >>> simulate(wl, SimConfig(policy="max")).peak_running
    7
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .config import POLICIES, SimConfig
from .engine.contiguous import BuddySpace, FirstFitSpace
from .engine.sharing import SharingResult, simulate_sharing
from .engine.simulator import simulate
from .errors import ConfigError, EmptyTraceError, FragSimError, TraceFormatError
from .experiments import EXPERIMENTS, TRACE_SCENARIOS, ExperimentReport, run_experiment
from .experiments.sweep import WorkloadSpec, run_sweep
from .report.metrics import Breakdown, SimResult, Timeseries
from .workload import LENGTH_MIXES, LengthDist, SyntheticWorkload, Workload
from .workload.prefix import PrefixStats, prefix_stats
from .workload.stream import Chunk, RequestStream, stream_trace, tile
from .workload.traces import (
    TRACE_FILES,
    default_trace_dir,
    load_azure_csv,
    load_csv,
    load_mooncake_jsonl,
    load_trace,
)

try:
    __version__ = version("frag-sim")
except PackageNotFoundError:  # a source tree on sys.path without installed metadata
    __version__ = "0+unknown"

__all__ = [
    "EXPERIMENTS",
    "LENGTH_MIXES",
    "POLICIES",
    "TRACE_FILES",
    "TRACE_SCENARIOS",
    "Breakdown",
    "BuddySpace",
    "Chunk",
    "ConfigError",
    "EmptyTraceError",
    "ExperimentReport",
    "FirstFitSpace",
    "FragSimError",
    "LengthDist",
    "PrefixStats",
    "RequestStream",
    "SharingResult",
    "SimConfig",
    "SimResult",
    "SyntheticWorkload",
    "Timeseries",
    "TraceFormatError",
    "Workload",
    "WorkloadSpec",
    "__version__",
    "default_trace_dir",
    "load_azure_csv",
    "load_csv",
    "load_mooncake_jsonl",
    "load_trace",
    "prefix_stats",
    "run_experiment",
    "run_sweep",
    "simulate",
    "simulate_sharing",
    "stream_trace",
    "tile",
]
