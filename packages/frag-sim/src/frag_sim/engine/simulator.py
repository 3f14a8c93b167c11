"""`simulate()`: replay one workload under one policy and return a :class:`SimResult`."""

from __future__ import annotations

import gc
from collections.abc import Callable

from ..config import SimConfig
from ..report.metrics import SimResult
from ..workload.requests import Workload
from ..workload.stream import RequestStream
from .base import Engine
from .contiguous import ContiguousEngine
from .paged import PagedEngine
from .paged_fast import SingleSeqPagedEngine

__all__ = ["OBSERVERS", "simulate"]

# called with every finished run's result (the command line's progress lines)
OBSERVERS: list[Callable[[SimResult], None]] = []


def simulate(workload: Workload | RequestStream, config: SimConfig) -> SimResult:
    """Run ``workload`` through ``config``'s policy on ``config.capacity_tokens`` slots.

    ``workload`` is an in-memory :class:`Workload` or a :class:`RequestStream` (read in
    chunks: memory follows the requests alive, not the stream's length). Requests longer
    than ``max_model_len``, or that could not fit even in an empty memory, are reported in
    ``SimResult.rejected`` with the reason; all others complete.
    """
    if not isinstance(workload, (Workload, RequestStream)):
        raise TypeError(
            f"workload must be a Workload or RequestStream, got {type(workload).__name__}"
        )
    if not isinstance(config, SimConfig):
        raise TypeError(f"config must be a SimConfig, got {type(config).__name__}")
    engine: Engine
    if config.policy != "paged":
        engine = ContiguousEngine(workload, config)
    elif config.n == 1 and not config.enable_prefix_caching:
        engine = SingleSeqPagedEngine(workload, config)
    else:
        engine = PagedEngine(workload, config)
    # the run makes no reference cycles: the cyclic collector would only re-walk the
    # allocator's block lists on every few thousand allocations
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        result = engine.run()
    finally:
        if was_enabled:
            gc.enable()
    for fn in OBSERVERS:
        fn(result)
    return result
