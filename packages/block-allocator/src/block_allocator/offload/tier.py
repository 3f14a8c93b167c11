"""The CPU tier itself: an LRU set of block hashes, and the events that report on tiers.

Mirrors vLLM 0.34.0's ``vllm/v1/kv_offload/cpu/policies/lru.py`` (recency order, the least
recently used entry dropped first) and the medium names of ``vllm/distributed/kv_events.py``
(``MEDIUM_GPU``, ``MEDIUM_CPU``). The tier holds hashes only: this package models which
blocks a medium holds, not their bytes.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .._checks import check_hash, check_int
from ..block import BlockHash
from ..errors import ArgumentValueError

__all__ = [
    "MEDIUM_CPU",
    "MEDIUM_GPU",
    "CPUOffloadTier",
    "CacheHit",
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
