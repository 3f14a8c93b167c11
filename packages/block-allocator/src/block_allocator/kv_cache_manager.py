"""The KV-cache manager: per-request block tables on top of the block pool.

Mirrors ``KVCacheManager`` in ``vllm/v1/core/kv_cache_manager.py`` together with the
full-attention path of ``single_type_kv_cache_manager.py`` (one KV-cache group), and brings
back vLLM v0's sequence fork (``BlockSpaceManager.fork``) for parallel sampling and beam
search: a child shares every block of its parent, and the first write into a shared
partial block copies it, reported as a (src, dst) pair for the kernel side to execute.
The per-step call order (lookup, allocate, advance ``num_computed_tokens``) is the one
vLLM's scheduler follows; the package README walks through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import attrgetter

from ._checks import check_int, check_owned
from .block import KVCacheBlock
from .block_pool import BlockPool
from .block_table import BlockTable
from .errors import UnknownRequestError
from .events import KVCacheEvent, PrefixCacheStats
from .request import Request

__all__ = ["KVCacheManager"]

_ref_cnt_of = attrgetter("ref_cnt")
_block_id_of = attrgetter("block_id")


class KVCacheManager:
    """Allocates, caches, forks and frees the blocks of running requests."""

    def __init__(
        self,
        num_blocks: int,
        block_size: int = 16,
        *,
        enable_caching: bool = True,
        free_order: str = "classic",
        enable_kv_cache_events: bool = False,
    ) -> None:
        self.block_size = check_int("block_size", block_size, 1)
        self.enable_caching = enable_caching
        self.block_pool = BlockPool(
            num_blocks,
            enable_caching,
            free_order=free_order,
            enable_kv_cache_events=enable_kv_cache_events,
            block_size=block_size,
        )
        self._tables: dict[str, BlockTable] = {}  # request id -> its block table
        self._req_blocks: dict[str, list[KVCacheBlock]] = {}  # the same blocks, as objects
        self._lookups: dict[str, tuple[int, int]] = {}  # id -> (tokens, hits) not yet recorded
        self._num_cached_block: dict[str, int] = {}  # leading blocks already in the cache
        self._blocks_to_copy: list[tuple[int, int]] = []
        self._stats = [0, 0, 0]  # requests, queried tokens, hit tokens

    # -- prefix cache -------------------------------------------------------------------
    def get_computed_blocks(self, request: Request) -> tuple[list[KVCacheBlock], int]:
        """Longest cached prefix of ``request`` as (blocks, number of tokens they hold).

        Stops at the first miss (hashes are chained) and never covers the last token: at
        most ``(num_tokens - 1) // block_size`` blocks, so the model always has at least one
        token to compute and the logits of the last position to sample from.
        """
        if not self.enable_caching:
            return [], 0
        request.bind_block_size(self.block_size)
        max_hit_blocks = (request.num_tokens - 1) // self.block_size
        hits = self.block_pool._longest_cache_hit(request.block_hashes[:max_hit_blocks])
        num_hit_tokens = len(hits) * self.block_size
        # Recorded by the first allocate_slots that succeeds, so a request the scheduler
        # looks up again on every retry of a blocked queue head counts once (vLLM #43736).
        self._lookups[request.request_id] = (request.num_tokens, num_hit_tokens)
        return hits, num_hit_tokens

    # -- allocation ---------------------------------------------------------------------
    def allocate_slots(
        self,
        request: Request,
        num_new_tokens: int,
        new_computed_blocks: Sequence[KVCacheBlock] | None = None,
    ) -> list[KVCacheBlock] | None:
        """Make room for ``num_new_tokens`` tokens after the computed ones; returns new blocks.

        ``new_computed_blocks`` (a prefix hit, first allocation only) are attached before
        them. Returns None, changing nothing, when the pool is short; that count includes
        hit blocks that sit free in the queue and copies of shared blocks this step writes.
        Blocks that become full are cached at once.
        """
        check_int("num_new_tokens", num_new_tokens, 0)
        hits = list(new_computed_blocks) if new_computed_blocks else []
        bs = self.block_size
        rid = request.request_id
        table = self._tables.get(rid)
        if hits and (table is not None or request.num_computed_tokens):
            raise ValueError("new_computed_blocks are allowed on a request's first allocation only")
        num_computed = request.num_computed_tokens + len(hits) * bs
        total = num_computed + num_new_tokens
        if total > request.num_tokens:
            raise ValueError(
                f"cannot compute up to token {total}: request {rid!r} has {request.num_tokens} "
                f"tokens ({num_computed} computed + num_new_tokens={num_new_tokens})"
            )
        if self.enable_caching:
            request.bind_block_size(bs)
        pool = self.block_pool
        blocks = self._req_blocks.get(rid)  # the live list, mutated only after the check
        held = blocks if blocks is not None else []
        num_new_blocks = max(0, -(-total // bs) - len(held) - len(hits))
        # Shared blocks this step writes into must be copied first (copy-on-write).
        first, stop = num_computed // bs, min(-(-total // bs), len(held))
        cow = [i for i in range(first, stop) if held[i].ref_cnt > 1] if num_new_tokens else []
        needed = num_new_blocks + len(cow)
        if hits:  # hit blocks that sit free leave the queue too
            check_owned(pool, hits)
            needed += list(map(_ref_cnt_of, hits)).count(0)
        if needed > pool.get_num_free_blocks():
            return None

        if table is None or blocks is None:
            table = self._tables[rid] = BlockTable(bs)
            blocks = self._req_blocks[rid] = []
            lookup = self._lookups.pop(rid, None)
            if lookup is not None:
                stats = self._stats
                stats[0] += 1
                stats[1] += lookup[0]
                stats[2] += lookup[1]
        if hits:
            pool.touch(hits)
            self._raise_priority(request, hits)
            blocks += hits
            table._extend_trusted(list(map(_block_id_of, hits)))
            self._num_cached_block[rid] = len(hits)
        for i in cow:
            src = blocks[i]
            blocks[i] = dst = pool.fork_block(src)
            table.replace(i, dst.block_id)
            if i * bs < num_computed:  # an empty reserved block has nothing to copy
                self._blocks_to_copy.append((src.block_id, dst.block_id))
        if num_new_blocks:
            new_blocks = pool.get_new_blocks(num_new_blocks)
            blocks += new_blocks
            table._extend_trusted(list(map(_block_id_of, new_blocks)))
        else:
            new_blocks = []
        if self.enable_caching:
            self._cache_full_blocks(request, blocks, total // bs)
        return new_blocks

    def _cache_full_blocks(self, request: Request, blocks: list[KVCacheBlock], end: int) -> None:
        rid = request.request_id
        start = self._num_cached_block.get(rid, 0)
        num_full = end  # blocks [0, end) are full once this step's tokens are written
        if num_full <= start:
            return
        bs = self.block_size
        hashes = request.block_hashes
        events = self.block_pool.enable_kv_cache_events
        # The request's retention priority covers its first retention_num_tokens only.
        keep = request.retention_num_tokens
        cut = num_full if keep is None else min(num_full, max(start, keep // bs))
        for lo, hi in ((start, cut), (cut, num_full)):
            if lo < hi:
                self.block_pool._cache_full_blocks_trusted(
                    blocks[lo:hi],
                    hashes[lo:hi],
                    hashes[lo - 1] if lo else None,
                    request.all_token_ids[lo * bs : hi * bs] if events else None,
                    request.lora_id,
                    request.block_retention_priority(lo),
                )
        self._num_cached_block[rid] = num_full

    def _raise_priority(self, request: Request, blocks: list[KVCacheBlock]) -> None:
        if request.retention_priority:
            for i, block in enumerate(blocks):
                level = request.block_retention_priority(i)
                if level > block.retention_priority:
                    self.block_pool.set_retention_priority([block], level)

    def free(self, request: Request) -> None:
        """Release the request's blocks, tail first (a no-op for a request without blocks).

        Reverse order puts a chain's deepest block nearest the head of the free queue, so
        eviction consumes tails before the shared prefixes other requests may still hit.
        """
        rid = request.request_id
        self._lookups.pop(rid, None)
        blocks = self._req_blocks.get(rid)
        if blocks is None:
            return
        self.block_pool.free_blocks(blocks[::-1])
        del self._tables[rid], self._req_blocks[rid]
        self._num_cached_block.pop(rid, None)

    def fork(self, parent: Request, child_request_id: str) -> Request:
        """A child of a running request that shares all its blocks (copy-on-write).

        Every block gains a reference; no KV is copied until a branch writes into a shared
        block, at which point ``allocate_slots`` gives the writer a private copy and queues
        the (src, dst) copy for :meth:`take_blocks_to_copy`.
        """
        ids = self.get_block_ids(parent.request_id)
        if child_request_id in self._tables:
            raise ValueError(f"request id {child_request_id!r} is already in use")
        child = parent._clone(child_request_id)
        blocks = self._req_blocks[parent.request_id]
        self.block_pool.touch(blocks)
        self._tables[child_request_id] = BlockTable(self.block_size, ids)
        self._req_blocks[child_request_id] = list(blocks)
        self._num_cached_block[child_request_id] = self._num_cached_block.get(parent.request_id, 0)
        return child

    def take_blocks_to_copy(self) -> list[tuple[int, int]]:
        """(src_block_id, dst_block_id) copies the kernel side must do before the step; drained."""
        pairs, self._blocks_to_copy = self._blocks_to_copy, []
        return pairs

    # -- views --------------------------------------------------------------------------
    def get_block_ids(self, request_id: str) -> list[int]:
        """Physical block ids of a request, in logical order."""
        return self._table_of(request_id).block_ids

    def get_block_table(self, request_id: str) -> BlockTable:
        """A copy of the request's block table (logical -> physical)."""
        return BlockTable(self.block_size, self._table_of(request_id).block_ids)

    def slot_mapping(self, request: Request, num_new_tokens: int) -> list[int]:
        """Slots of positions ``num_computed_tokens .. +num_new_tokens-1`` (this step's writes)."""
        table = self._table_of(request.request_id)
        return table.slot_mapping(request.num_computed_tokens, num_new_tokens)

    def _table_of(self, request_id: str) -> BlockTable:
        table = self._tables.get(request_id)
        if table is None:
            raise UnknownRequestError(f"request {request_id!r} holds no blocks")
        return table

    @property
    def usage(self) -> float:
        """Fraction of non-null blocks in use (see :meth:`BlockPool.get_usage`)."""
        return self.block_pool.get_usage()

    @property
    def num_free_blocks(self) -> int:
        return self.block_pool.get_num_free_blocks()

    @property
    def prefix_cache_stats(self) -> PrefixCacheStats:
        """Cumulative prefix-cache lookups of admitted requests (tokens, as vLLM counts them).

        A lookup (:meth:`get_computed_blocks`) is recorded when the request's first
        :meth:`allocate_slots` succeeds, with the token and hit counts of its latest lookup;
        a lookup followed by a refused allocation, a retry or :meth:`free` is not counted
        again. A preempted request that is looked up and admitted again counts again.
        """
        return PrefixCacheStats(*self._stats)

    def take_events(self) -> list[KVCacheEvent]:
        return self.block_pool.take_events()

    def reset_prefix_cache(self) -> bool:
        """Drop every cached block; False (no change) while any request holds blocks."""
        return self.block_pool.reset_prefix_cache()
