"""The block pool: every physical block, its free queues and the prefix-cache index.

Mirrors ``BlockPool`` in ``vllm/v1/core/block_pool.py`` (single KV-cache group). Block 0 is
the null block: never handed out, never free, excluded from usage. Caching is lazy: a freed
block keeps its hash and stays findable until ``get_new_blocks`` reuses it.

Two free orders. ``"classic"`` (default; vLLM before PR #42656, the Phase 02 labs): a block
whose ``ref_cnt`` drops to 0 is appended at the tail. ``"fresh_first"`` (vLLM 0.33): blocks
without a hash go to the head, so they are reused before any cached block is evicted;
hashed blocks go to the tail (LRU).

Beyond vLLM, retention priorities: one free queue per :class:`RetentionPriority` level and
eviction drains the lowest non-empty level first, so a pinned system prompt is evicted
after every ordinary block. The number of levels is a constant (3), so each operation
stays O(1) per block. A block's level is kept while it is cached and reset on eviction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ._checks import (
    check_block_list,
    check_bool,
    check_cache_args,
    check_choice,
    check_in_use,
    check_int,
    check_optional_int,
    check_priority,
    type_name,
)
from ._release import release, release_per_level
from .block import NUM_RETENTION_PRIORITIES, BlockHash, KVCacheBlock
from .errors import ArgumentTypeError, OutOfBlocksError
from .events import KVCacheEvent
from .free_queue import FreeKVCacheBlockQueue
from .prefix_cache import PrefixCacheIndex

__all__ = ["FREE_ORDERS", "BlockPool"]

FREE_ORDERS = ("classic", "fresh_first")


class BlockPool:
    """``num_blocks`` blocks (ids 0..num_blocks-1, 0 = null) with ref counts and a prefix cache."""

    def __init__(
        self,
        num_blocks: int,
        enable_caching: bool = True,
        *,
        free_order: str = "classic",
        enable_kv_cache_events: bool = False,
        block_size: int | None = None,
    ) -> None:
        check_int("num_blocks", num_blocks, 2, " (block 0 is the null block)")
        check_bool("enable_caching", enable_caching)
        check_choice("free_order", free_order, FREE_ORDERS)
        check_bool("enable_kv_cache_events", enable_kv_cache_events)
        check_optional_int("block_size", block_size, 1)
        self.num_blocks = num_blocks
        self.enable_caching = enable_caching
        self.free_order = free_order
        self.enable_kv_cache_events = enable_kv_cache_events
        self.block_size = block_size
        self.blocks = [KVCacheBlock(i, pool=self) for i in range(num_blocks)]
        self.null_block = self.blocks[0]
        self.null_block.is_null = True
        self._queues = tuple(FreeKVCacheBlockQueue() for _ in range(NUM_RETENTION_PRIORITIES))
        self._queues[0].append_n(self.blocks[1:])
        self._index = PrefixCacheIndex(block_size, enable_kv_cache_events)
        self._fresh_first = free_order == "fresh_first"
        self._head_run = KVCacheBlock(-1)  # sentinel of free_blocks' detached head run

    # -- allocation ---------------------------------------------------------------------
    def get_new_blocks(self, num_blocks: int) -> list[KVCacheBlock]:
        """Take ``num_blocks`` blocks from the head of the free queues (lowest level first).

        A popped block that still holds a hash is evicted from the cache first (lazy
        eviction). Raises :class:`OutOfBlocksError`, pool unchanged, when too few are free.
        """
        q0 = self._queues[0]
        if type(num_blocks) is not int or not 0 < num_blocks <= q0.num_free_blocks:
            return self._get_new_blocks_slow(num_blocks)
        head = q0._head
        cur: KVCacheBlock = head.next_free  # type: ignore[assignment]
        q0.num_free_blocks -= num_blocks
        # A non-empty index means a popped block may still hold a hash (lazy eviction).
        evict = self._index.evict if self._index._blocks else None
        if num_blocks == 1:  # one decode step's new block: skip the list-building loop
            nxt: KVCacheBlock = cur.next_free  # type: ignore[assignment]
            head.next_free = nxt
            nxt.prev_free = head
            cur.prev_free = cur.next_free = None
            cur.ref_cnt = 1
            if evict is not None and cur.block_hash is not None:
                evict(cur)
            return [cur]
        out: list[KVCacheBlock] = []
        push = out.append
        for _ in range(num_blocks):
            nxt = cur.next_free  # type: ignore[assignment]
            cur.prev_free = cur.next_free = None
            cur.ref_cnt = 1
            if evict is not None and cur.block_hash is not None:
                evict(cur)
            push(cur)
            cur = nxt
        head.next_free = cur
        cur.prev_free = head
        return out

    def _get_new_blocks_slow(self, num_blocks: int) -> list[KVCacheBlock]:
        check_int("num_blocks", num_blocks, 0)
        free = self.get_num_free_blocks()
        if num_blocks > free:
            raise OutOfBlocksError(num_blocks, free)
        out: list[KVCacheBlock] = []
        for queue in self._queues:
            take = min(num_blocks - len(out), queue.num_free_blocks)
            out += queue.popleft_n(take)
        for block in out:
            block.ref_cnt = 1
            if block.block_hash is not None:
                self._index.evict(block)
        return out

    def touch(self, blocks: Sequence[KVCacheBlock]) -> None:
        """Take one more reference to each block (a prefix hit); free ones leave the queue.

        The null block is skipped (its ``ref_cnt`` is not tracked), as in vLLM.
        """
        if type(blocks) is not list and type(blocks) is not tuple:
            check_block_list(self, blocks)
        for block in blocks:  # all checked before any changes
            if block.__class__ is not KVCacheBlock or block._pool is not self:
                check_block_list(self, blocks)
        queues = self._queues
        # Without retention priorities every free block is in queue 0: count once at the end.
        per_level = self._index.num_prioritized > 0
        revived = 0
        for block in blocks:
            ref_cnt = block.ref_cnt
            if ref_cnt == 0:
                if block.is_null:
                    continue
                prev: KVCacheBlock = block.prev_free  # type: ignore[assignment]
                nxt: KVCacheBlock = block.next_free  # type: ignore[assignment]
                prev.next_free = nxt
                nxt.prev_free = prev
                block.prev_free = block.next_free = None
                if per_level:
                    queues[block.retention_priority].num_free_blocks -= 1
                else:
                    revived += 1
            block.ref_cnt = ref_cnt + 1
        queues[0].num_free_blocks -= revived

    def free_blocks(self, blocks: Iterable[KVCacheBlock], evict_first: bool = False) -> None:
        """Drop one reference per block, in the order given; blocks reaching 0 become free.

        Callers pass a request's blocks tail first, so the deepest cached block of a chain
        is evicted before its ancestors. ``evict_first=True`` (vLLM 0.34) puts every block
        that reaches 0 at the head of the free queue instead, first block first, for blocks
        whose contents another tier already holds. Any iterable is accepted and not copied.
        Freeing the null block, a block from another pool, a non-block, or a block more
        times than it is referenced raises and changes nothing.
        """
        if evict_first.__class__ is not bool:
            check_bool("evict_first", evict_first)  # type: ignore[unreachable]
        if type(blocks) is not list:
            try:
                blocks = iter(blocks)
            except TypeError:
                raise ArgumentTypeError(
                    f"blocks must be an iterable of KVCacheBlocks, got {type_name(blocks)}"
                ) from None
        if self._index.num_prioritized:
            release_per_level(self, self._queues, blocks, self._fresh_first, evict_first)
        else:
            release(self, self._queues[0], blocks, self._fresh_first, evict_first, self._head_run)

    def fork_block(self, block: KVCacheBlock) -> KVCacheBlock:
        """Copy-on-write: a private, writable block for one holder of ``block``.

        Returns ``block`` itself when the caller is its only holder and it is not cached;
        otherwise takes a new block, drops the caller's reference to ``block`` and returns
        the new one (the caller must copy the KV contents, src -> dst).
        """
        check_in_use(self, block)
        if block.ref_cnt == 1 and block.block_hash is None:
            return block
        new = self.get_new_blocks(1)[0]
        self.free_blocks([block])
        return new

    # -- prefix cache ---------------------------------------------------------------------
    def cache_full_blocks(
        self,
        blocks: Sequence[KVCacheBlock],
        block_hashes: Sequence[BlockHash],
        *,
        parent_block_hash: BlockHash | None = None,
        token_ids: Sequence[int] | None = None,
        lora_id: int | None = None,
        retention_priority: int = 0,
    ) -> None:
        """Index full, in-use ``blocks`` under ``block_hashes`` (one hash per block, in order).

        A block already holding the same hash is skipped. When another block already holds
        the hash, the first writer stays indexed and this block stays uncached, so block
        tables never change (vLLM keeps such duplicates in its index; we do not).
        ``token_ids`` (the blocks' tokens, flattened) feed the ``BlockStored`` event and are
        checked against ``block_size`` when the pool knows it.
        """
        check_cache_args(
            self,
            blocks,
            block_hashes,
            parent_block_hash,
            token_ids,
            self.block_size,
            lora_id,
            retention_priority,
        )
        self._cache_full_blocks_trusted(
            blocks, block_hashes, parent_block_hash, token_ids, lora_id, retention_priority
        )

    def _cache_full_blocks_trusted(
        self,
        blocks: Sequence[KVCacheBlock],
        block_hashes: Sequence[BlockHash],
        parent_block_hash: BlockHash | None,
        token_ids: Sequence[int] | None,
        lora_id: int | None,
        retention_priority: int,
    ) -> None:
        # For the KVCacheManager: its blocks are in use and owned by this pool, and its
        # hashes are the request's own, so the per-block checks above cannot fail.
        if self.enable_caching:
            self._index.insert(
                blocks, block_hashes, parent_block_hash, token_ids, lora_id, retention_priority
            )

    def get_cached_block(self, block_hash: BlockHash) -> KVCacheBlock | None:
        """The block caching ``block_hash`` (possibly free, i.e. ``ref_cnt == 0``), or None."""
        if type(block_hash) is not bytes:  # a str or tuple would simply miss: refuse it
            raise ArgumentTypeError(f"block_hash must be bytes, got {type_name(block_hash)}")
        return self._index.get(block_hash)

    def _longest_cache_hit(self, block_hashes: Sequence[BlockHash]) -> list[KVCacheBlock]:
        # The manager's prefix lookup: get_cached_block per hash, up to the first miss.
        return self._index.longest_prefix(block_hashes)

    def set_retention_priority(self, blocks: Sequence[KVCacheBlock], priority: int) -> None:
        """Set the retention level of cached ``blocks`` (uncached and null blocks are skipped)."""
        check_priority(priority, "priority")
        check_block_list(self, blocks)
        for block in blocks:
            old = block.retention_priority
            if block.block_hash is None or old == priority:
                continue
            if block.ref_cnt == 0:  # free: move it to the tail of its new level's queue
                self._queues[old].remove(block)
                self._queues[priority].append(block)
            self._index.set_priority(block, priority)

    def reset_prefix_cache(self) -> bool:
        """Forget every cached block, all or nothing: False (no change) while any is in use."""
        if self.get_num_free_blocks() != self.num_blocks - 1:
            return False
        self._index.clear()  # every level collapses into level 0, in eviction order
        self._queues[0].append_n([b for q in self._queues for b in q.popleft_n(q.num_free_blocks)])
        return True

    # -- accounting -----------------------------------------------------------------------
    def get_num_free_blocks(self) -> int:
        """Free blocks, cached eviction candidates included."""
        q = self._queues
        return q[0].num_free_blocks + q[1].num_free_blocks + q[2].num_free_blocks

    def get_usage(self) -> float:
        """Fraction of the non-null blocks in use (cached free blocks count as free)."""
        return 1.0 - self.get_num_free_blocks() / (self.num_blocks - 1)

    @property
    def num_cached_blocks(self) -> int:
        """Blocks currently in the hash index, free or in use."""
        return len(self._index)

    def get_free_blocks(self) -> list[KVCacheBlock]:
        """Every free block in eviction order (lowest level's head first); O(n), for tests."""
        return [b for q in self._queues for b in q]

    def take_events(self) -> list[KVCacheEvent]:
        """Return and clear the events since the last call (empty unless events are enabled)."""
        index = self._index
        events, index.events = index.events, []
        return events
