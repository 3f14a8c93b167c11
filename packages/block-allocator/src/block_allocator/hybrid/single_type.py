"""Per-group KV-cache managers: the block table of one attention type for every request.

Mirrors ``SingleTypeKVCacheManager``, ``FullAttentionManager``, ``SlidingWindowManager``
and ``ChunkedLocalAttentionManager`` in vLLM 0.34.0's
``vllm/v1/core/single_type_kv_cache_manager.py``. Each manager owns one KV-cache group's
tables (``req_to_blocks``) but allocates from the pool all groups share. What differs
between attention types is two rules:

- ``get_num_skipped_tokens``: tokens no future step reads. Their whole blocks are freed
  and replaced by the null block, so a sliding-window table looks like
  ``[null, null, 7, 3]`` and holds only the window (``remove_skipped_blocks``).
- ``find_longest_cache_hit``: which cached blocks a prefix hit of a given length needs.
  Full attention needs every block; a sliding window only the blocks the window still
  reads at the hit boundary; chunked local attention only those of the current chunk.

Differences from vLLM: no EAGLE drop, no fine-grained (sub-block) hits, no DCP/PCP, no
admission cap, no external (connector) blocks; a group's cache keys are passed in per
request instead of being resolved from the pool's hash block size.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..block import BlockHash, KVCacheBlock
from ..block_pool import BlockPool
from ..request import Request

__all__ = [
    "ChunkedLocalAttentionManager",
    "FullAttentionManager",
    "SingleTypeKVCacheManager",
    "SlidingWindowManager",
]


def _cdiv(a: int, b: int) -> int:
    return -(a // -b)


class SingleTypeKVCacheManager:
    """Block tables of one KV-cache group; subclasses set the skip and hit rules."""

    #: a hit of length L implies hits of every shorter length (full attention only)
    downward_closed = False

    def __init__(self, spec: object, block_pool: BlockPool, group_id: int, enable_caching: bool):
        self.spec = spec
        self.block_size: int = spec.block_size  # type: ignore[attr-defined]
        self.block_pool = block_pool
        self.group_id = group_id
        self.enable_caching = enable_caching
        self.null_block = block_pool.null_block
        self.req_to_blocks: dict[str, list[KVCacheBlock]] = {}
        self.num_cached_block: dict[str, int] = {}  # leading blocks already offered to the cache

    # -- rules per attention type ---------------------------------------------------------
    def get_num_skipped_tokens(self, num_computed_tokens: int) -> int:
        """Leading tokens that no later step attends to (0: keep everything)."""
        return 0

    def find_longest_cache_hit(
        self, keys: Sequence[BlockHash], max_length: int
    ) -> tuple[list[KVCacheBlock], int]:
        """Hit blocks (null where not needed) and the hit length in tokens, <= max_length."""
        raise NotImplementedError

    # -- allocation -----------------------------------------------------------------------
    def get_num_blocks_to_allocate(
        self,
        request_id: str,
        num_tokens: int,
        new_computed_blocks: Sequence[KVCacheBlock],
        num_computed_tokens: int,
    ) -> int:
        """Free blocks this step takes: new blocks plus hit blocks that leave the free queue."""
        num_required = _cdiv(num_tokens, self.block_size)
        held = self.req_to_blocks.get(request_id)
        if held is not None:  # running: no new hits, the table only grows
            return max(num_required - len(held), 0)
        num_skipped = self.get_num_skipped_tokens(num_computed_tokens) // self.block_size
        num_new = max(num_required - max(num_skipped, len(new_computed_blocks)), 0)
        evictable = sum(
            1 for b in new_computed_blocks[num_skipped:] if b.ref_cnt == 0 and not b.is_null
        )
        return num_new + evictable

    def add_computed_blocks(
        self, request_id: str, new_computed_blocks: Sequence[KVCacheBlock], num_computed_tokens: int
    ) -> None:
        """Start a table with the request's hit: skipped blocks become null, others are touched."""
        num_skipped = self.get_num_skipped_tokens(num_computed_tokens) // self.block_size
        kept = [b for b in new_computed_blocks[num_skipped:] if not b.is_null]
        if self.enable_caching and kept:
            self.block_pool.touch(kept)
        table = [self.null_block] * min(num_skipped, len(new_computed_blocks))
        table += new_computed_blocks[num_skipped:]
        self.req_to_blocks[request_id] = table
        self.num_cached_block[request_id] = len(table)

    def allocate_new_blocks(self, request_id: str, num_tokens: int) -> list[KVCacheBlock]:
        """Grow the table to cover ``num_tokens`` tokens; returns the new blocks."""
        table = self.req_to_blocks.setdefault(request_id, [])
        num_new = _cdiv(num_tokens, self.block_size) - len(table)
        if num_new <= 0:
            return []
        new = self.block_pool.get_new_blocks(num_new)
        table += new
        return new

    # -- freeing --------------------------------------------------------------------------
    def skipped_indices(self, request_id: str, num_computed_tokens: int) -> list[int]:
        """Table indices ``remove_skipped_blocks`` would null out, deepest first."""
        table = self.req_to_blocks.get(request_id)
        if not table:
            return []
        end = min(self.get_num_skipped_tokens(num_computed_tokens) // self.block_size, len(table))
        out: list[int] = []
        for i in range(end - 1, -1, -1):
            if table[i].is_null:  # everything before was removed by an earlier step
                break
            out.append(i)
        return out

    def num_freed_by_skip(self, request_id: str, num_computed_tokens: int) -> int:
        table = self.req_to_blocks.get(request_id, [])
        return sum(
            1
            for i in self.skipped_indices(request_id, num_computed_tokens)
            if table[i].ref_cnt == 1
        )

    def remove_skipped_blocks(self, request_id: str, num_computed_tokens: int) -> None:
        """Free the blocks no later step reads and put the null block in their place."""
        indices = self.skipped_indices(request_id, num_computed_tokens)
        if not indices:
            return
        table = self.req_to_blocks[request_id]
        # Deepest first, so the longer prefix is evicted before the shorter one.
        freed = [table[i] for i in indices]
        for i in indices:
            table[i] = self.null_block
        self.block_pool.free_blocks(freed)

    def free(self, request_id: str) -> None:
        """Release the request's blocks, tail first (null blocks are never freed)."""
        table = self.req_to_blocks.pop(request_id, None)
        self.num_cached_block.pop(request_id, None)
        if table:
            self.block_pool.free_blocks([b for b in reversed(table) if not b.is_null])

    # -- caching --------------------------------------------------------------------------
    def cache_blocks(self, request: Request, num_tokens: int, keys: Sequence[BlockHash]) -> None:
        """Offer the table's full blocks up to ``num_tokens`` to the prefix cache."""
        rid = request.request_id
        start = self.num_cached_block.get(rid, 0)
        end = min(num_tokens // self.block_size, len(keys))
        if end <= start:
            return
        self._cache_range(request, start, end, keys)
        self.num_cached_block[rid] = end

    def _cache_range(
        self, request: Request, start: int, end: int, keys: Sequence[BlockHash]
    ) -> None:
        # One cache_full_blocks call per run of real blocks (nulls are never cached).
        table = self.req_to_blocks[request.request_id]
        pool = self.block_pool
        bs = self.block_size
        events = pool.enable_kv_cache_events
        lo = start
        while lo < end:
            if table[lo].is_null:
                lo += 1
                continue
            hi = lo
            while hi < end and not table[hi].is_null:
                hi += 1
            pool.cache_full_blocks(
                table[lo:hi],
                keys[lo:hi],
                parent_block_hash=keys[lo - 1] if lo else None,
                token_ids=request.all_token_ids[lo * bs : hi * bs] if events else None,
                lora_id=request.lora_id,
            )
            lo = hi


class FullAttentionManager(SingleTypeKVCacheManager):
    """Every block is needed; a hit is the longest cached prefix (hashes are chained)."""

    downward_closed = True

    def find_longest_cache_hit(
        self, keys: Sequence[BlockHash], max_length: int
    ) -> tuple[list[KVCacheBlock], int]:
        get = self.block_pool.get_cached_block
        hits: list[KVCacheBlock] = []
        for key in keys[: max_length // self.block_size]:
            block = get(key)
            if block is None:
                break
            hits.append(block)
        return hits, len(hits) * self.block_size


class SlidingWindowManager(SingleTypeKVCacheManager):
    """Keeps the last ``sliding_window - 1`` tokens; a hit needs only the blocks they fill."""

    def __init__(self, spec: object, block_pool: BlockPool, group_id: int, enable_caching: bool):
        super().__init__(spec, block_pool, group_id, enable_caching)
        self.sliding_window: int = spec.sliding_window  # type: ignore[attr-defined]
        # Blocks a hit must end with: those holding the window's w - 1 earlier tokens.
        self.num_contiguous_blocks = _cdiv(self.sliding_window - 1, self.block_size)

    def get_num_skipped_tokens(self, num_computed_tokens: int) -> int:
        # The next token (position num_computed_tokens) attends to the w - 1 before it.
        return max(0, num_computed_tokens - self.sliding_window + 1)

    def find_longest_cache_hit(
        self, keys: Sequence[BlockHash], max_length: int
    ) -> tuple[list[KVCacheBlock], int]:
        get = self.block_pool.get_cached_block
        need = self.num_contiguous_blocks
        max_blocks = min(max_length // self.block_size, len(keys))
        hits = [self.null_block] * max_blocks
        run = 0
        # Right to left: the first run of `need` cached blocks ends the longest hit.
        for i in range(max_blocks - 1, -1, -1):
            block = get(keys[i])
            if block is None:
                run = 0
                continue
            hits[i] = block
            run += 1
            if run >= need:
                del hits[i + run :]
                return hits, len(hits) * self.block_size
        # No full run: only a cached prefix shorter than the window can serve (the run
        # counted last started at block 0).
        del hits[run:]
        return hits, run * self.block_size


class ChunkedLocalAttentionManager(SingleTypeKVCacheManager):
    """Attention within fixed chunks; blocks of earlier chunks are never read again."""

    def __init__(self, spec: object, block_pool: BlockPool, group_id: int, enable_caching: bool):
        super().__init__(spec, block_pool, group_id, enable_caching)
        self.attention_chunk_size: int = spec.attention_chunk_size  # type: ignore[attr-defined]

    def get_num_skipped_tokens(self, num_computed_tokens: int) -> int:
        chunk = self.attention_chunk_size
        return num_computed_tokens // chunk * chunk

    def find_longest_cache_hit(
        self, keys: Sequence[BlockHash], max_length: int
    ) -> tuple[list[KVCacheBlock], int]:
        # Blocks before the chunk that holds position max_length count as computed (null);
        # inside that chunk the hit is the cached run from the chunk's first block.
        bs = self.block_size
        chunk = self.attention_chunk_size
        start = max_length // chunk * chunk // bs
        hits = [self.null_block] * start
        get = self.block_pool.get_cached_block
        for i in range(start, min(max_length // bs, len(keys))):
            block = get(keys[i])
            if block is None:
                break
            hits.append(block)
        return hits, len(hits) * bs
