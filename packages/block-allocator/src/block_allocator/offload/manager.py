"""The offloading manager: a KVCacheManager whose evicted blocks spill into a CPU tier.

Mirrors the scheduler side of vLLM 0.34.0's ``vllm/v1/kv_offload/`` (``cpu/manager.py``'s
``CPUOffloadingManager``: lookup, prepare_load/complete_load, prepare_store) folded into
the ``KVCacheManager`` calls: a lookup continues past the GPU hit into the tier, admission
loads that part into new GPU blocks, and every GPU eviction (a ``BlockRemoved`` event) is
stored in the tier. Transfers complete at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .._checks import check_bool, type_name
from ..block import BlockHash, KVCacheBlock
from ..block_pool import BlockPool
from ..errors import ArgumentTypeError, ArgumentValueError, RequestStateError
from ..events import BlockRemoved, KVCacheEvent
from ..kv_cache_manager import KVCacheManager
from ..request import Request
from .tier import (
    MEDIUM_GPU,
    CacheHit,
    CPUOffloadTier,
    TierBlockLoaded,
    TierBlockRemoved,
    TierBlockStored,
    TierEvent,
)

__all__ = ["OffloadStats", "OffloadingKVCacheManager"]


@dataclass(frozen=True, slots=True)
class OffloadStats:
    """Per-tier counters since construction (tokens for hits, blocks for transfers)."""

    requests: int = 0  # admitted requests with a recorded lookup
    queries: int = 0  # their prompt tokens
    gpu_hits: int = 0  # tokens served by GPU blocks
    cpu_hits: int = 0  # tokens loaded from the CPU tier
    stores: int = 0  # blocks written to the CPU tier
    loads: int = 0  # blocks read back from it
    cpu_evictions: int = 0  # blocks the CPU tier dropped
    cpu_num_blocks: int = 0  # resident now
    cpu_capacity: int = 0

    @property
    def hit_rate(self) -> float:
        """Fraction of queried tokens served by either tier."""
        return (self.gpu_hits + self.cpu_hits) / self.queries if self.queries else 0.0

    @property
    def gpu_hit_rate(self) -> float:
        return self.gpu_hits / self.queries if self.queries else 0.0

    @property
    def cpu_hit_rate(self) -> float:
        return self.cpu_hits / self.queries if self.queries else 0.0


class OffloadingKVCacheManager:
    """A :class:`KVCacheManager` whose evicted blocks spill into a :class:`CPUOffloadTier`.

    ``get_computed_blocks`` returns the GPU hit blocks and a hit length that also counts
    the CPU part; pass both to ``allocate_slots`` unchanged (``num_new_tokens`` counted
    from the full hit), which allocates GPU blocks for the CPU part and reports the load.

    ``keep_events=False`` drops the events once the tier has seen them, so a long
    simulation that never calls :meth:`take_events` keeps no event log (stats still count).
    """

    def __init__(
        self, manager: KVCacheManager, cpu_tier: CPUOffloadTier, *, keep_events: bool = True
    ) -> None:
        if not isinstance(manager, KVCacheManager):
            raise ArgumentTypeError(f"manager must be a KVCacheManager, got {type_name(manager)}")
        if not isinstance(cpu_tier, CPUOffloadTier):
            raise ArgumentTypeError(f"cpu_tier must be a CPUOffloadTier, got {type_name(cpu_tier)}")
        if not manager.block_pool.enable_kv_cache_events:
            raise ArgumentValueError(
                "the manager needs enable_kv_cache_events=True: the CPU tier learns which "
                "blocks the GPU evicts from its BlockRemoved events"
            )
        self.keep_events = check_bool("keep_events", keep_events)
        self.manager = manager
        self.cpu_tier = cpu_tier
        self.block_size = manager.block_size
        self._pending: dict[str, tuple[int, list[BlockHash]]] = {}  # id -> (GPU hits, CPU run)
        self._events: list[KVCacheEvent | TierEvent] = []
        self._counts = [0] * 7  # requests, queries, gpu_hits, cpu_hits, stores, loads, evictions

    # -- the KVCacheManager calls ---------------------------------------------------------
    def get_computed_blocks(
        self, request: Request, max_cache_hit_length: int | None = None
    ) -> tuple[list[KVCacheBlock], int]:
        """GPU hit blocks and the hit length in tokens, GPU and CPU parts together."""
        blocks, num_gpu = self.manager.get_computed_blocks(request, max_cache_hit_length)
        if not self.manager.enable_caching or request.prefix_cache_hit_limit == 0:
            return blocks, num_gpu
        max_tokens = request.get_max_cache_hit_length(max_cache_hit_length)
        hashes = request.block_hashes[len(blocks) : max_tokens // self.block_size]
        cpu_run = self.cpu_tier.longest_prefix(hashes)
        self._pending[request.request_id] = (len(blocks), cpu_run)
        return blocks, num_gpu + len(cpu_run) * self.block_size

    def allocate_slots(
        self,
        request: Request,
        num_new_tokens: int,
        new_computed_blocks: Sequence[KVCacheBlock] | None = None,
    ) -> list[KVCacheBlock] | None:
        """``KVCacheManager.allocate_slots``, loading the CPU part of the hit on admission."""
        rid = request.request_id
        pending = self._pending.get(rid)
        cpu_run: list[BlockHash] = []
        if pending is not None and pending[1] and len(new_computed_blocks or ()) == pending[0]:
            cpu_run = pending[1]
            missing = [h for h in cpu_run if h not in self.cpu_tier]
            if missing:
                raise RequestStateError(
                    f"the CPU part of request {rid!r}'s hit was dropped since "
                    "get_computed_blocks; look the request up again"
                )
        if isinstance(num_new_tokens, int) and not isinstance(num_new_tokens, bool):
            num_new = num_new_tokens + len(cpu_run) * self.block_size
        else:
            num_new = num_new_tokens  # let the manager name the bad argument
        new = self.manager.allocate_slots(request, num_new, new_computed_blocks)
        if new is None:
            return None
        if pending is not None:
            del self._pending[rid]
            self._record_admission(request, new_computed_blocks or (), cpu_run)
        self._drain()
        return new

    def _record_admission(
        self, request: Request, gpu_blocks: Sequence[KVCacheBlock], cpu_run: list[BlockHash]
    ) -> None:
        c = self._counts
        c[0] += 1
        c[1] += request.num_tokens
        c[2] += len(gpu_blocks) * self.block_size
        rid = request.request_id
        if gpu_blocks:
            hashes = tuple(request.block_hashes[: len(gpu_blocks)])
            self._events.append(CacheHit(rid, hashes, MEDIUM_GPU))
        if cpu_run:
            c[3] += len(cpu_run) * self.block_size
            c[5] += len(cpu_run)
            # Loaded blocks become most recent before this step's evictions are stored.
            self.cpu_tier.touch(cpu_run)
            medium = self.cpu_tier.medium
            self._events.append(TierBlockLoaded(rid, tuple(cpu_run), medium))
            self._events.append(CacheHit(rid, tuple(cpu_run), medium))

    def _drain(self) -> None:
        # Every GPU eviction since the last call becomes a CPU store.
        medium = self.cpu_tier.medium
        out = self._events
        for event in self.manager.take_events():
            out.append(event)
            if type(event) is BlockRemoved:
                stored, dropped = self.cpu_tier._store(event.block_hashes)
                if dropped:
                    self._counts[6] += len(dropped)
                    out.append(TierBlockRemoved(tuple(dropped), medium))
                if stored:
                    self._counts[4] += len(stored)
                    out.append(TierBlockStored(tuple(stored), medium))
        if not self.keep_events:
            out.clear()

    def free(self, request: Request) -> None:
        self._pending.pop(request.request_id, None)
        self.manager.free(request)
        self._drain()

    def reset_prefix_cache(self) -> bool:
        """Forget every cached block on both tiers; False (no change) while any is in use."""
        if not self.manager.reset_prefix_cache():
            return False
        self._drain()
        dropped = self.cpu_tier.clear()
        self._pending.clear()
        if dropped and self.keep_events:
            self._events.append(TierBlockRemoved(tuple(dropped), self.cpu_tier.medium))
        return True

    def take_events(self) -> list[KVCacheEvent | TierEvent]:
        """GPU events (``BlockStored``, ``BlockRemoved``, ...) and tier events, in order."""
        self._drain()
        events, self._events = self._events, []
        return events

    @property
    def offload_stats(self) -> OffloadStats:
        requests, queries, gpu_hits, cpu_hits, stores, loads, evictions = self._counts
        return OffloadStats(
            requests=requests,
            queries=queries,
            gpu_hits=gpu_hits,
            cpu_hits=cpu_hits,
            stores=stores,
            loads=loads,
            cpu_evictions=evictions,
            cpu_num_blocks=len(self.cpu_tier),
            cpu_capacity=self.cpu_tier.num_blocks,
        )

    # -- passed through -------------------------------------------------------------------
    def get_block_ids(self, request_id: str) -> list[int]:
        return self.manager.get_block_ids(request_id)

    def slot_mapping(self, request: Request, num_new_tokens: int) -> list[int]:
        return self.manager.slot_mapping(request, num_new_tokens)

    @property
    def block_pool(self) -> BlockPool:
        return self.manager.block_pool

    @property
    def usage(self) -> float:
        return self.manager.usage

    @property
    def num_free_blocks(self) -> int:
        return self.manager.num_free_blocks
