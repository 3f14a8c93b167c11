"""KV-cache events of a run as vLLM publishes them, one JSON line per scheduler step.

vLLM's ``vllm/distributed/kv_events.py`` (0.34.0) defines the events a cache-aware router
consumes: ``BlockStored`` (block_hashes, parent_block_hash, token_ids, block_size,
lora_id, medium, lora_name), ``BlockRemoved`` (block_hashes, medium) and
``AllBlocksCleared``, tagged by class name in a ``type`` field (msgspec ``tag=True``) and
batched as ``KVEventBatch`` (ts, events, data_parallel_rank). Fields that vLLM leaves at
their default and omits (``omit_defaults``: group_idx, extra_keys, locality, ...) are
omitted here too. The
engine's ``block_allocator`` pool records them as blocks enter and leave its prefix cache
(``enable_kv_cache_events``); this module drains them after every scheduler event and
writes each batch as one JSON object per line::

    {"ts": 12.35, "events": [{"type": "BlockStored", "block_hashes": ["9f..."], ...}],
     "data_parallel_rank": null}

``ts`` is the window's first scheduler step times ``step_time_s``, in simulated seconds
(vLLM stamps wall-clock time). Hashes
are the allocator's 32-byte SHA-256 block hashes as hex strings (vLLM sends raw bytes over
msgpack); ``medium`` is ``"GPU"``. Only prefix-cached paged runs produce events: without
prefix caching no block is ever stored.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from typing import IO, Any

from block_allocator import AllBlocksCleared, BlockRemoved, BlockStored, KVCacheEvent

from ..config import SimConfig
from ..engine.paged import PagedEngine
from ..errors import ConfigError
from ..workload.requests import Workload
from ..workload.stream import RequestStream
from .io import atomic_write
from .metrics import SimResult

__all__ = ["event_to_dict", "simulate_with_events"]

# the GPU pool's events (a CPU tier adds its own, which vLLM reports per medium)
_GPU_EVENTS = (BlockStored, BlockRemoved, AllBlocksCleared)


def _hex(h: bytes | int | None) -> str | int | None:
    return h.hex() if isinstance(h, bytes) else h


def event_to_dict(ev: KVCacheEvent) -> dict[str, Any]:
    """One event as vLLM's field names (``type`` carries the msgspec tag)."""
    if isinstance(ev, BlockStored):
        return {
            "type": "BlockStored",
            "block_hashes": [_hex(h) for h in ev.block_hashes],
            "parent_block_hash": _hex(ev.parent_block_hash),
            "token_ids": list(ev.token_ids),
            "block_size": ev.block_size,
            "lora_id": ev.lora_id,
            "medium": "GPU",
            "lora_name": None,
        }
    if isinstance(ev, BlockRemoved):
        return {
            "type": "BlockRemoved",
            "block_hashes": [_hex(h) for h in ev.block_hashes],
            "medium": "GPU",
        }
    if isinstance(ev, AllBlocksCleared):
        return {"type": "AllBlocksCleared"}
    raise TypeError(f"not a KV-cache event: {type(ev).__name__}")


class _EventEngine(PagedEngine):
    """``PagedEngine`` that drains the pool's events into batches after every window."""

    kv_events = True

    def __init__(self, workload: Workload | RequestStream, config: SimConfig) -> None:
        super().__init__(workload, config)
        self.batches: list[tuple[float, list[KVCacheEvent]]] = []

    def integrate(self, t: int, k: int, live: int, waiting: bool) -> Any:
        self.sync_all(t)  # the owed blocks exist in the pool before the batch is cut
        evs = [e for e in self.kvm.take_events() if isinstance(e, _GPU_EVENTS)]
        if evs:
            self.batches.append((t * self.cfg.step_time_s, evs))
        return super().integrate(t, k, live, waiting)


def _lines(batches: Iterable[tuple[float, list[KVCacheEvent]]]) -> Iterable[str]:
    for ts, evs in batches:
        doc = {
            "ts": round(ts, 6),
            "events": [event_to_dict(e) for e in evs],
            "data_parallel_rank": None,
        }
        yield json.dumps(doc, separators=(",", ":")) + "\n"


def simulate_with_events(
    workload: Workload | RequestStream, config: SimConfig, out: str | os.PathLike[str] | IO[str]
) -> SimResult:
    """Run a prefix-cached paged ``config`` and write its KV events as JSON lines to
    ``out`` (a path, ``-`` for stdout, or an open text file); returns the run's result."""
    if config.policy != "paged" or not config.enable_prefix_caching:
        raise ConfigError("KV events need policy='paged' with enable_prefix_caching=True")
    eng = _EventEngine(workload, config)
    result = eng.run()
    tail = [e for e in eng.kvm.take_events() if isinstance(e, _GPU_EVENTS)]
    if tail:
        eng.batches.append((eng.busy * config.step_time_s, tail))
    if isinstance(out, (str, os.PathLike)) and str(out) != "-":
        text = "".join(_lines(eng.batches)).encode()
        atomic_write(out, lambda fh: fh.write(text))
    else:
        fh = sys.stdout if str(out) == "-" else out
        assert not isinstance(fh, (str, os.PathLike))
        fh.writelines(_lines(eng.batches))
        fh.flush()
    return result
