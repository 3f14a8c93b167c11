"""A short simulator run as a step-through page: every allocator call the engine made.

``record_simulation`` runs :func:`frag_sim.simulate` with prefix caching on (the paged
path that goes through ``KVCacheManager`` for every lookup, allocation and free) and hands
the engine a ``block_allocator.stepthrough.Recorder`` in place of its manager, so each
call becomes a step of the page that ``block-allocator stepthrough`` writes. The engine
itself is unchanged; only the factory that builds its manager is swapped for the run.

    python -m frag_sim.stepthrough -o frag-sim-run.html
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from unittest import mock

from block_allocator import KVCacheManager
from block_allocator.stepthrough import Recorder

from .config import SimConfig
from .engine import paged_memory
from .engine.simulator import simulate
from .errors import ConfigError
from .report.metrics import SimResult
from .workload import LengthDist, SyntheticWorkload, Workload

__all__ = ["record_simulation", "small_workload"]


def small_workload(num_requests: int = 8, seed: int = 0) -> Workload:
    """Requests with a shared 32-token system prompt: short enough to follow call by call."""
    return SyntheticWorkload(
        num_requests=num_requests,
        rate=4.0,
        prompt=LengthDist.uniform(4, 24),
        output=LengthDist.uniform(4, 24),
        shared_prefix_len=32,
        seed=seed,
        name="step-through",
    ).generate()


def record_simulation(
    workload: Workload, config: SimConfig | None = None
) -> tuple[Recorder, SimResult]:
    """Simulate ``workload`` (paged, prefix caching on) and record every manager call."""
    config = config or SimConfig(
        policy="paged", capacity_tokens=256, max_model_len=128, block_size=16
    )
    if config.policy != "paged" or (not config.enable_prefix_caching and config.n == 1):
        # without caching one sequence takes its blocks straight from the pool: no calls
        config = dataclasses.replace(config, policy="paged", enable_prefix_caching=True)
    if config.cpu_cache_tokens:
        raise ConfigError("cpu_cache_tokens must be 0 here: the step-through shows one GPU pool")
    recorders: list[Recorder] = []

    def recording_manager(
        num_usable_blocks: int, block_size: int, enable_caching: bool, events: bool = False
    ) -> Any:
        manager = KVCacheManager(
            num_usable_blocks + 1,
            block_size,
            enable_caching=enable_caching,
            enable_kv_cache_events=events,
        )
        recorder = Recorder(manager, title=f"A frag-sim run: {workload.name}, paged/{block_size}")
        recorders.append(recorder)
        return recorder.manager

    with mock.patch.object(paged_memory, "make_manager", recording_manager):
        result = simulate(workload, config)
    (recorder,) = recorders
    return recorder, result


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m frag_sim.stepthrough -o PAGE``: a short simulator run, call by call."""
    parser = argparse.ArgumentParser(
        prog="python -m frag_sim.stepthrough",
        description=main.__doc__,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("-o", "--out", default="frag-sim-run.html", help="the page to write")
    parser.add_argument("--requests", type=int, default=8, help="requests in the run")
    parser.add_argument("--seed", type=int, default=0, help="the workload's seed")
    args = parser.parse_args(argv)
    if args.requests < 1:
        parser.error(f"--requests must be >= 1, got {args.requests}")
    out = Path(args.out)
    if not out.parent.is_dir():
        parser.error(f"--out's folder {str(out.parent)!r} does not exist")
    recorder, result = record_simulation(small_workload(args.requests, args.seed))
    recorder.write_page(out)
    print(
        f"wrote {out} ({len(recorder.steps)} steps, {result.completed} requests completed); "
        "open it in a browser"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
