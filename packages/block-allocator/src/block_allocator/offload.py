"""A CPU offload tier: a second, larger LRU store that catches the blocks the GPU pool evicts.

Modelled on vLLM 0.34.0's ``vllm/v1/kv_offload/`` (``cpu/manager.py``'s
``CPUOffloadingManager`` with ``cpu/policies/lru.py``) and the medium field of
``vllm/distributed/kv_events.py`` (``MEDIUM_GPU``/``MEDIUM_CPU``). The tier holds block
hashes only (no KV bytes, like the rest of this package):

- **store**: a full, cached block that the GPU pool evicts (its ``BlockRemoved`` event) is
  written to the CPU tier as its most recently used entry; when the tier is full, its
  least recently used entry is dropped.
- **load**: a lookup continues past the GPU prefix hit into the CPU tier. Admitting the
  request allocates fresh GPU blocks for the CPU part, which count as computed ("loaded
  from CPU") and are cached on the GPU again. A load refreshes the entries' recency and
  keeps them (the tier is inclusive, as vLLM's).

:class:`OffloadingKVCacheManager` wraps a :class:`~block_allocator.KVCacheManager` built with
``enable_kv_cache_events=True`` and offers the same calls. Differences from vLLM: vLLM's
connector stores blocks as soon as they are computed and the GPU later frees them with
``evict_first``; here a block reaches the CPU only when the GPU evicts it (a victim
cache), and transfers complete at once (no asynchronous store/load).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from ._checks import check_hash, check_int, type_name
from .block import BlockHash, KVCacheBlock
from .block_pool import BlockPool
from .errors import ArgumentTypeError, ArgumentValueError, RequestStateError
from .events import BlockRemoved, KVCacheEvent
from .kv_cache_manager import KVCacheManager
from .request import Request

__all__ = [
    "MEDIUM_CPU",
    "MEDIUM_GPU",
    "CPUOffloadTier",
    "CacheHit",
    "OffloadStats",
    "OffloadingKVCacheManager",
    "TierBlockLoaded",
    "TierBlockRemoved",
    "TierBlockStored",
    "TierEvent",
]

MEDIUM_GPU = "GPU"
MEDIUM_CPU = "CPU"


@dataclass(frozen=True, slots=True)
class TierBlockStored:
    """Blocks were written to ``medium`` (an offload), oldest first."""

    block_hashes: tuple[BlockHash, ...]
    medium: str


@dataclass(frozen=True, slots=True)
class TierBlockRemoved:
    """Blocks were dropped from ``medium`` (its own LRU eviction or a reset)."""

    block_hashes: tuple[BlockHash, ...]
    medium: str


@dataclass(frozen=True, slots=True)
class TierBlockLoaded:
    """Blocks were read from ``medium`` into new GPU blocks for ``request_id``."""

    request_id: str
    block_hashes: tuple[BlockHash, ...]
    medium: str


@dataclass(frozen=True, slots=True)
class CacheHit:
    """A request was admitted with a prefix hit of ``block_hashes`` served by ``medium``."""

    request_id: str
    block_hashes: tuple[BlockHash, ...]
    medium: str


TierEvent = TierBlockStored | TierBlockRemoved | TierBlockLoaded | CacheHit


class CPUOffloadTier:
    """``num_blocks`` block hashes in LRU order (head = next to drop); no KV bytes."""

    def __init__(self, num_blocks: int, *, medium: str = MEDIUM_CPU) -> None:
        check_int("num_blocks", num_blocks, 0, " (0 stores nothing)")
        if not isinstance(medium, str) or not medium:
            raise ArgumentValueError(f"medium must be a non-empty str, got {medium!r}")
        self.num_blocks = num_blocks
        self.medium = medium
        self._lru: OrderedDict[BlockHash, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._lru)

    def __contains__(self, block_hash: object) -> bool:
        return block_hash in self._lru

    def __iter__(self) -> Iterator[BlockHash]:
        """Resident hashes, least recently used first."""
        return iter(self._lru)

    def longest_prefix(self, block_hashes: Iterable[BlockHash]) -> list[BlockHash]:
        """The leading ``block_hashes`` the tier holds, up to the first miss (no recency change)."""
        out: list[BlockHash] = []
        for h in block_hashes:
            if h not in self._lru:
                break
            out.append(h)
        return out

    def store(self, block_hashes: Iterable[BlockHash]) -> tuple[list[BlockHash], list[BlockHash]]:
        """Write blocks as most recently used; returns (newly stored, dropped to make room).

        A hash already resident is only refreshed. With ``num_blocks == 0`` nothing is kept.
        """
        block_hashes = list(block_hashes)
        for h in block_hashes:
            check_hash("block_hashes", h)
        return self._store(block_hashes)

    def _store(self, block_hashes: Iterable[BlockHash]) -> tuple[list[BlockHash], list[BlockHash]]:
        # The offloading manager's path: hashes from the pool's own events are valid.
        lru = self._lru
        stored: list[BlockHash] = []
        dropped: list[BlockHash] = []
        for h in block_hashes:
            if h in lru:
                lru.move_to_end(h)
                continue
            if not self.num_blocks:
                continue
            if len(lru) >= self.num_blocks:
                dropped.append(lru.popitem(last=False)[0])
            lru[h] = None
            stored.append(h)
        # A hash stored and dropped in the same call never really landed.
        if dropped and stored:
            gone = set(dropped) & set(stored)
            if gone:
                stored = [h for h in stored if h not in gone]
                dropped = [h for h in dropped if h not in gone]
        return stored, dropped

    def touch(self, block_hashes: Iterable[BlockHash]) -> None:
        """Mark resident blocks most recently used (a load reads them)."""
        lru = self._lru
        for h in block_hashes:
            if h in lru:
                lru.move_to_end(h)

    def clear(self) -> list[BlockHash]:
        """Drop everything; returns what was resident, LRU first."""
        out = list(self._lru)
        self._lru.clear()
        return out


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
    """

    def __init__(self, manager: KVCacheManager, cpu_tier: CPUOffloadTier) -> None:
        if not isinstance(manager, KVCacheManager):
            raise ArgumentTypeError(f"manager must be a KVCacheManager, got {type_name(manager)}")
        if not isinstance(cpu_tier, CPUOffloadTier):
            raise ArgumentTypeError(f"cpu_tier must be a CPUOffloadTier, got {type_name(cpu_tier)}")
        if not manager.block_pool.enable_kv_cache_events:
            raise ArgumentValueError(
                "the manager needs enable_kv_cache_events=True: the CPU tier learns which "
                "blocks the GPU evicts from its BlockRemoved events"
            )
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
        if dropped:
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
