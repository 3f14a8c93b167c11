"""`simulate()`: replay one workload under one policy and return a :class:`SimResult`."""

from __future__ import annotations

from ._engine import Engine
from ._paged_fast import SingleSeqPagedEngine
from .config import SimConfig
from .contiguous import ContiguousEngine
from .metrics import SimResult
from .paged import PagedEngine
from .workload import Workload

__all__ = ["simulate"]


def simulate(workload: Workload, config: SimConfig) -> SimResult:
    """Run ``workload`` through ``config``'s policy on ``config.capacity_tokens`` slots.

    Requests longer than ``max_model_len``, or that could not fit even in an empty memory,
    are reported in ``SimResult.rejected`` with the reason; all others complete.
    """
    if not isinstance(workload, Workload):
        raise TypeError(f"workload must be a Workload, got {type(workload).__name__}")
    if not isinstance(config, SimConfig):
        raise TypeError(f"config must be a SimConfig, got {type(config).__name__}")
    engine: Engine
    if config.policy != "paged":
        engine = ContiguousEngine(workload, config)
    elif config.n == 1 and not config.enable_prefix_caching:
        engine = SingleSeqPagedEngine(workload, config)
    else:
        engine = PagedEngine(workload, config)
    return engine.run()
