"""Workload specs (picklable recipes) and parallel sweeps over configs: local or Dask.

A sweep is a list of (workload spec, config) tasks; each worker rebuilds a workload once
from its spec (cached), so traces are parsed per worker instead of being pickled across.
Results come back in task order as flat summary dicts, the same whether the tasks ran in
this process, in local worker processes (``jobs``) or on a Dask cluster (``cluster``: a
scheduler address or a ``distributed.Client``; ``pip install frag-sim[dask]``). Every
task is deterministic (seeded workloads, no wall-clock decisions), so the three agree
exactly except for ``wall_s``. On a cluster, every worker needs the traces a task names
in its own trace folder.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from ..config import SimConfig
from ..engine.simulator import simulate
from ..errors import ConfigError
from ..workload.requests import LENGTH_MIXES, SyntheticWorkload, Workload
from ..workload.stream import RequestStream, tile
from ..workload.traces import load_csv, load_trace

__all__ = ["WorkloadSpec", "run_sweep"]

CONNECT_TIMEOUT = "20s"  # to reach a Dask scheduler given by address


@dataclass(frozen=True)
class WorkloadSpec:
    """How to build a workload: ``synthetic`` (a length mix), ``trace`` or ``csv``."""

    kind: Literal["synthetic", "trace", "csv"] = "synthetic"
    mix: str = "capstone"
    num_requests: int = 1000
    rate: float = 1.0
    burstiness: float = 1.0
    seed: int = 0
    shared_prefix_len: int = 0
    trace: str = ""
    trace_dir: str | None = None
    path: str = ""
    columns: tuple[tuple[str, str], ...] = ()
    arrival_unit: str = "s"
    head: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("synthetic", "trace", "csv"):
            raise ConfigError(f"workload kind must be synthetic, trace or csv, got {self.kind!r}")
        if self.kind == "synthetic" and self.mix not in LENGTH_MIXES:
            raise ConfigError(f"unknown length mix {self.mix!r}; known: {sorted(LENGTH_MIXES)}")
        if self.kind == "trace" and not self.trace:
            raise ConfigError("a trace workload needs trace=<name or path>")
        if self.kind == "csv" and not (self.path and self.columns):
            raise ConfigError("a csv workload needs path and columns")
        if self.head is not None and self.head < 1:
            raise ConfigError(f"head must be >= 1, got {self.head}")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkloadSpec:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown workload key(s) {unknown}; known: {sorted(known)}")
        d = dict(data)
        if isinstance(d.get("columns"), dict):
            d["columns"] = tuple(sorted(d["columns"].items()))
        return cls(**d)

    def build(self) -> Workload:
        return _build(self)

    def replace(self, **changes: Any) -> WorkloadSpec:
        return dataclasses.replace(self, **changes)

    def stream(self, tile_to: int) -> RequestStream:
        """The workload repeated in time to ``tile_to`` requests, streamed in chunks."""
        return tile(self.build(), tile_to)

    @property
    def label(self) -> str:
        if self.kind == "synthetic":
            base = f"{self.mix}(n={self.num_requests},rate={self.rate},seed={self.seed})"
        elif self.kind == "trace":
            base = os.path.basename(self.trace)
        else:
            base = os.path.basename(self.path)
        return base + (f"[:{self.head}]" if self.head else "")


@lru_cache(maxsize=8)
def _build(spec: WorkloadSpec) -> Workload:
    if spec.kind == "synthetic":
        wl = SyntheticWorkload.from_mix(
            spec.mix,
            num_requests=spec.num_requests,
            rate=spec.rate,
            burstiness=spec.burstiness,
            seed=spec.seed,
            shared_prefix_len=spec.shared_prefix_len,
        ).generate()
    elif spec.kind == "trace":
        wl = load_trace(spec.trace, spec.trace_dir)
    else:
        wl = load_csv(spec.path, dict(spec.columns), arrival_unit=spec.arrival_unit)
    return wl.head(spec.head) if spec.head else wl


def _task(spec: WorkloadSpec, config: SimConfig) -> dict[str, Any]:
    r = simulate(spec.build(), config.replace(record_timeseries=False))
    out = r.summary()
    out["workload"] = spec.label
    return out


def run_sweep(
    tasks: Sequence[tuple[WorkloadSpec, SimConfig]],
    *,
    jobs: int = 1,
    cluster: str | Any | None = None,
    progress: Callable[[int, int, dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Run every task; results in task order.

    ``cluster`` (a Dask scheduler address such as ``tcp://host:8786``, or a
    ``distributed.Client``) runs the tasks there; else ``jobs > 1`` spreads them over local
    processes; else they run here. ``progress(done, total, row)`` follows each result.
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ConfigError(f"jobs must be an integer >= 1, got {jobs!r}")
    n = len(tasks)
    out: list[dict[str, Any] | None] = [None] * n
    # longest first: a big trace run started last would dominate the wall time
    order = sorted(range(n), key=lambda k: _cost(tasks[k]), reverse=True)

    def done(k: int, row: dict[str, Any], count: int) -> None:
        out[k] = row
        if progress:
            progress(count, n, row)

    if cluster is not None:
        _run_dask(tasks, order, cluster, done)
    elif jobs == 1 or n <= 1:
        for count, (k, (spec, cfg)) in enumerate(enumerate(tasks), start=1):
            done(k, _task(spec, cfg), count)
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futs = {pool.submit(_task, *tasks[k]): k for k in order}
            for count, fut in enumerate(as_completed(futs), start=1):
                done(futs[fut], fut.result(), count)
    return [r for r in out if r is not None]


def _run_dask(
    tasks: Sequence[tuple[WorkloadSpec, SimConfig]],
    order: list[int],
    cluster: str | Any,
    done: Callable[[int, dict[str, Any], int], None],
) -> None:
    try:  # an optional extra, typed as Any (dask's annotations are partial)
        dd: Any = importlib.import_module("dask.distributed")
    except ImportError:
        raise ConfigError("a cluster sweep needs Dask: pip install 'frag-sim[dask]'") from None
    own = isinstance(cluster, str)
    if own:
        try:
            client = dd.Client(cluster, timeout=CONNECT_TIMEOUT)
        except OSError as exc:
            raise ConfigError(f"cannot reach the Dask scheduler at {cluster!r}: {exc}") from None
    else:
        client = cluster
    try:
        futs = {client.submit(_task, *tasks[k], pure=False): k for k in order}
        for count, fut in enumerate(dd.as_completed(futs), start=1):
            done(futs[fut], fut.result(), count)
    finally:
        if own:
            client.close()


def _cost(task: tuple[WorkloadSpec, SimConfig]) -> float:
    spec, cfg = task
    return (1.0 / cfg.block_size if cfg.policy == "paged" else 0.01) * (
        10.0 if "mooncake" in spec.trace else 1.0
    )


def tasks_product(
    specs: Iterable[WorkloadSpec], configs: Iterable[SimConfig]
) -> list[tuple[WorkloadSpec, SimConfig]]:
    cs = list(configs)
    return [(s, c) for s in specs for c in cs]
