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

from .manager import OffloadingKVCacheManager, OffloadStats
from .tier import (
    MEDIUM_CPU,
    MEDIUM_GPU,
    CacheHit,
    CPUOffloadTier,
    TierBlockLoaded,
    TierBlockRemoved,
    TierBlockStored,
    TierEvent,
)

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
