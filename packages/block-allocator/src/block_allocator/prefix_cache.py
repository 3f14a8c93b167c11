"""The prefix-cache index: block hash -> the one block caching it, and the KV-cache events.

Mirrors ``BlockHashToBlockMap`` in ``vllm/v1/core/kv_cache_utils.py`` and the caching half of
``vllm/v1/core/block_pool.py`` (``cache_full_blocks``, ``_maybe_evict_cached_block``,
event emission). The :class:`~block_allocator.BlockPool` validates and owns the free
queues; this index owns the invariant "a block is indexed under ``h`` iff its
``block_hash == h``" and the count of blocks with a retention priority above 0.

Differences from vLLM: one block per hash. When a second block fills with content that is
already cached, it simply stays uncached (the first writer keeps the key), so the index is
a plain dict and no block table ever changes. vLLM keeps such duplicates too.
"""

from __future__ import annotations

from collections.abc import Sequence

from .block import BlockHash, KVCacheBlock
from .events import AllBlocksCleared, BlockRemoved, BlockStored, KVCacheEvent

__all__ = ["PrefixCacheIndex"]


class PrefixCacheIndex:
    """Hash -> block map with lazy eviction and an event log (``events``, drained by the pool)."""

    __slots__ = ("_blocks", "block_size", "enable_events", "events", "num_prioritized")

    def __init__(self, block_size: int | None = None, enable_events: bool = False) -> None:
        self._blocks: dict[BlockHash, KVCacheBlock] = {}
        self.block_size = block_size
        self.enable_events = enable_events
        self.events: list[KVCacheEvent] = []
        self.num_prioritized = 0  # indexed blocks with retention_priority > 0

    def __len__(self) -> int:
        return len(self._blocks)

    def get(self, block_hash: BlockHash) -> KVCacheBlock | None:
        return self._blocks.get(block_hash)

    def longest_prefix(self, block_hashes: Sequence[BlockHash]) -> list[KVCacheBlock]:
        """The blocks caching ``block_hashes[0], [1], ...`` up to the first miss."""
        get = self._blocks.get
        hits: list[KVCacheBlock] = []
        for block_hash in block_hashes:
            block = get(block_hash)
            if block is None:
                break
            hits.append(block)
        return hits

    def insert(
        self,
        blocks: Sequence[KVCacheBlock],
        block_hashes: Sequence[BlockHash],
        parent_block_hash: BlockHash | None,
        token_ids: Sequence[int] | None,
        lora_id: int | None,
        retention_priority: int,
    ) -> None:
        """Index each uncached block under its hash unless another block already holds it."""
        index = self._blocks
        stored: list[int] = []
        for i, (block, block_hash) in enumerate(zip(blocks, block_hashes, strict=True)):
            if block.block_hash is None and block_hash not in index:
                block.block_hash = block_hash
                index[block_hash] = block
                if retention_priority:
                    block.retention_priority = retention_priority
                    self.num_prioritized += 1
                stored.append(i)
        if self.enable_events and stored:
            self._emit_stored(stored, block_hashes, parent_block_hash, token_ids, lora_id)

    def evict(self, block: KVCacheBlock) -> None:
        """Drop ``block``'s hash: its KV is about to be overwritten."""
        block_hash: BlockHash = block.block_hash  # type: ignore[assignment]
        del self._blocks[block_hash]
        block.block_hash = None
        if block.retention_priority:
            block.retention_priority = 0
            self.num_prioritized -= 1
        if self.enable_events:
            self.events.append(BlockRemoved((block_hash,)))

    def set_priority(self, block: KVCacheBlock, priority: int) -> None:
        self.num_prioritized += (priority > 0) - (block.retention_priority > 0)
        block.retention_priority = priority

    def clear(self) -> None:
        """Forget every cached block."""
        for block in self._blocks.values():
            block.reset_hash()
        self._blocks.clear()
        self.num_prioritized = 0
        if self.enable_events:
            self.events.append(AllBlocksCleared())

    def _emit_stored(
        self,
        stored: list[int],
        block_hashes: Sequence[BlockHash],
        parent: BlockHash | None,
        token_ids: Sequence[int] | None,
        lora_id: int | None,
    ) -> None:
        # One BlockStored per run of consecutive new blocks, each naming the hash before it,
        # so a consumer can rebuild the chains even when a duplicate splits a call.
        size = len(token_ids) // len(block_hashes) if token_ids else 0
        start = 0
        for k in range(1, len(stored) + 1):
            if k == len(stored) or stored[k] != stored[k - 1] + 1:
                lo, hi = stored[start], stored[k - 1] + 1
                tokens = tuple(token_ids[lo * size : hi * size]) if token_ids else ()
                before = block_hashes[lo - 1] if lo else parent
                hashes = tuple(block_hashes[lo:hi])
                self.events.append(BlockStored(hashes, before, tokens, self.block_size, lora_id))
                start = k
