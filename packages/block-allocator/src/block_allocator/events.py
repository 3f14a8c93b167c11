"""Observability: KV-cache events and prefix-cache hit statistics.

Mirrors ``BlockStored`` / ``BlockRemoved`` / ``AllBlocksCleared`` in
``vllm/distributed/kv_events.py`` (emitted by ``vllm/v1/core/block_pool.py``, drained with
``take_events()``) and ``PrefixCacheStats`` in ``vllm/v1/metrics/stats.py``. A cache-aware
router replays the events to mirror which prefixes each server holds; the parent hash
lets it rebuild the chains. We omit vLLM's storage-medium and group fields (one GPU tier,
one KV-cache group).
"""

from __future__ import annotations

from dataclasses import dataclass

from .block import BlockHash

__all__ = ["AllBlocksCleared", "BlockRemoved", "BlockStored", "KVCacheEvent", "PrefixCacheStats"]


@dataclass(frozen=True, slots=True)
class BlockStored:
    """Blocks entered the prefix cache, in chain order (``block_hashes[0]`` follows the parent)."""

    block_hashes: tuple[BlockHash, ...]
    parent_block_hash: BlockHash | None
    token_ids: tuple[int, ...]
    block_size: int | None
    lora_id: int | None = None


@dataclass(frozen=True, slots=True)
class BlockRemoved:
    """Cached blocks were evicted (their KV is about to be overwritten)."""

    block_hashes: tuple[BlockHash, ...]


@dataclass(frozen=True, slots=True)
class AllBlocksCleared:
    """``reset_prefix_cache`` dropped every cached block."""


KVCacheEvent = BlockStored | BlockRemoved | AllBlocksCleared


@dataclass(frozen=True, slots=True)
class PrefixCacheStats:
    """Prefix-cache lookups of admitted requests since the last drain, as vLLM 0.34 counts them.

    ``queries`` and ``hits`` count tokens. Requests that were preempted before
    (``Request.num_preemptions > 0``) are counted in the ``preempted_*`` fields only, as in
    vLLM's ``PrefixCacheStats.record``; ``reset`` says ``reset_prefix_cache`` succeeded in
    this window, so a consumer of the drained stats restarts its running hit rate.
    """

    requests: int = 0
    queries: int = 0
    hits: int = 0
    reset: bool = False
    preempted_requests: int = 0
    preempted_queries: int = 0
    preempted_hits: int = 0

    @property
    def hit_rate(self) -> float:
        """Fraction of looked-up prompt tokens served from the cache (0.0 before any lookup)."""
        return self.hits / self.queries if self.queries else 0.0
