"""Residency statistics: how long cached blocks live, sit idle and wait between reuses.

Mirrors vLLM 0.34.0's ``vllm/v1/core/kv_cache_metrics.py`` (``KVCacheMetricsCollector``:
block lifetime, idle time before eviction and reuse gaps, exported as histograms), but is
driven by the KV-cache events this package already emits and runs on a logical clock
(scheduler steps, or any integer the caller passes), so a simulation gives the same
numbers on every machine. It is a listener: nothing in the allocator calls it, so it
costs nothing unless you feed it events.

Per medium (``"GPU"``, or a tier's medium such as ``"CPU"``), per block hash:

- **birth**: ``BlockStored`` (GPU) or ``TierBlockStored`` (the tier's medium);
- **access**: ``CacheHit`` events (from :class:`~block_allocator.offload.OffloadingKVCacheManager`)
  or :meth:`ResidencyTracker.record_access`; each access after the first adds a reuse gap;
- **death**: ``BlockRemoved`` / ``TierBlockRemoved`` add a lifetime (death - birth) and an
  idle time (death - last access, or - birth if never hit). ``AllBlocksCleared`` forgets
  the GPU blocks without recording them (a reset is not an eviction).

Differences from vLLM: every block is tracked (vLLM samples 1 % by default), all reuse
gaps are kept (vLLM keeps the last four per block), and times are logical, not seconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .block import BlockHash
from .errors import ArgumentValueError
from .events import AllBlocksCleared, BlockRemoved, BlockStored
from .offload import MEDIUM_GPU, CacheHit, TierBlockRemoved, TierBlockStored

__all__ = ["Histogram", "ResidencyStats", "ResidencyTracker"]


@dataclass
class Histogram:
    """Counts of non-negative integers in power-of-two buckets: 0, 1, [2, 4), [4, 8), ...

    ``buckets[k]`` counts values whose ``bit_length()`` is ``k`` (so bucket k >= 1 spans
    ``[2**(k-1), 2**k)``). ``count``, ``total`` and ``max`` are exact.
    """

    buckets: list[int] = field(default_factory=list)
    count: int = 0
    total: int = 0
    max: int = 0

    def add(self, value: int) -> None:
        if value < 0:
            raise ArgumentValueError(f"histogram values must be >= 0, got {value}")
        k = value.bit_length()
        if k >= len(self.buckets):
            self.buckets.extend([0] * (k + 1 - len(self.buckets)))
        self.buckets[k] += 1
        self.count += 1
        self.total += value
        self.max = max(self.max, value)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    def quantile(self, q: float) -> int:
        """Upper edge of the bucket holding the ``q``-quantile (0 when empty)."""
        if not 0.0 <= q <= 1.0:
            raise ArgumentValueError(f"q must be in [0, 1], got {q}")
        if not self.count:
            return 0
        rank = max(1, round(q * self.count))
        seen = 0
        for k, n in enumerate(self.buckets):
            seen += n
            if seen >= rank:
                return min(self.max, (1 << k) - 1) if k else 0
        return self.max

    def bucket_edges(self) -> list[tuple[int, int, int]]:
        """(low, high inclusive, count) per non-empty bucket, for printing or plotting."""
        out = []
        for k, n in enumerate(self.buckets):
            if n:
                low = 0 if k == 0 else 1 << (k - 1)
                out.append((low, max(low, (1 << k) - 1), n))
        return out


@dataclass
class ResidencyStats:
    """The three histograms of one medium."""

    lifetime: Histogram = field(default_factory=Histogram)
    idle_before_eviction: Histogram = field(default_factory=Histogram)
    reuse_gap: Histogram = field(default_factory=Histogram)


class ResidencyTracker:
    """Builds residency histograms per medium from a stream of KV-cache and tier events."""

    def __init__(self) -> None:
        self.now = 0
        self.stats: dict[str, ResidencyStats] = {}
        # medium -> hash -> [birth, last access]; -1: not accessed since birth
        self._live: dict[str, dict[BlockHash, list[int]]] = {}

    def tick(self, steps: int = 1) -> int:
        """Advance the logical clock (one scheduler step by default); returns the new time."""
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ArgumentValueError(f"steps must be an int >= 0, got {steps!r}")
        self.now += steps
        return self.now

    def _medium(self, medium: str) -> tuple[dict[BlockHash, list[int]], ResidencyStats]:
        live = self._live.setdefault(medium, {})
        stats = self.stats.get(medium)
        if stats is None:
            stats = self.stats[medium] = ResidencyStats()
        return live, stats

    def observe(self, events: Iterable[object], now: int | None = None) -> None:
        """Apply events that happened at time ``now`` (default: the current clock)."""
        if now is not None:
            if isinstance(now, bool) or not isinstance(now, int) or now < self.now:
                raise ArgumentValueError(
                    f"now must be an int >= the current time {self.now}, got {now!r}"
                )
            self.now = now
        for event in events:
            if isinstance(event, (BlockStored, TierBlockStored)):
                medium = event.medium if isinstance(event, TierBlockStored) else MEDIUM_GPU
                self._born(medium, event.block_hashes)
            elif isinstance(event, (BlockRemoved, TierBlockRemoved)):
                medium = event.medium if isinstance(event, TierBlockRemoved) else MEDIUM_GPU
                self._died(medium, event.block_hashes)
            elif isinstance(event, CacheHit):
                self.record_access(event.block_hashes, event.medium)
            elif isinstance(event, AllBlocksCleared):
                self._live.pop(MEDIUM_GPU, None)

    def record_access(self, block_hashes: Iterable[BlockHash], medium: str = MEDIUM_GPU) -> None:
        """Count a prefix hit on ``block_hashes`` now (untracked hashes are ignored)."""
        live, stats = self._medium(medium)
        now = self.now
        for h in block_hashes:
            entry = live.get(h)
            if entry is None:
                continue
            if entry[1] >= 0:
                stats.reuse_gap.add(now - entry[1])
            entry[1] = now

    def _born(self, medium: str, block_hashes: Iterable[BlockHash]) -> None:
        live, _ = self._medium(medium)
        for h in block_hashes:
            live[h] = [self.now, -1]

    def _died(self, medium: str, block_hashes: Iterable[BlockHash]) -> None:
        live, stats = self._medium(medium)
        now = self.now
        for h in block_hashes:
            entry = live.pop(h, None)
            if entry is None:
                continue
            birth, last = entry
            stats.lifetime.add(now - birth)
            stats.idle_before_eviction.add(now - (birth if last < 0 else last))

    def num_live(self, medium: str = MEDIUM_GPU) -> int:
        """Blocks of ``medium`` born and not yet evicted."""
        return len(self._live.get(medium, {}))
