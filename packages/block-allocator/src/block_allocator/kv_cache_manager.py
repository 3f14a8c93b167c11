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

from ._checks import (
    check_block_list,
    check_bool,
    check_int,
    check_optional_int,
    check_request_id,
    type_name,
)
from ._prefix_stats import PrefixCacheStatsRecorder
from .block import KVCacheBlock
from .block_pool import BlockPool
from .block_table import BlockTable
from .errors import ArgumentTypeError, RequestStateError, UnknownRequestError
from .events import KVCacheEvent, PrefixCacheStats
from .hashing import hash_request_tokens
from .request import Request

__all__ = ["KVCacheManager"]

_ref_cnt_of = attrgetter("ref_cnt")
_block_id_of = attrgetter("block_id")


def _check_request(request: object, name: str = "request") -> Request:
    if not isinstance(request, Request):
        raise ArgumentTypeError(f"{name} must be a Request, got {type_name(request)}")
    return request


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
        check_bool("enable_caching", enable_caching)
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
        self._num_cached_block: dict[str, int] = {}  # leading blocks already in the cache
        self._blocks_to_copy: list[tuple[int, int]] = []
        self._prefix_stats = PrefixCacheStatsRecorder()

    # -- prefix cache -------------------------------------------------------------------
    def get_computed_blocks(
        self, request: Request, max_cache_hit_length: int | None = None
    ) -> tuple[list[KVCacheBlock], int]:
        """Longest cached prefix of ``request`` as (blocks, number of tokens they hold).

        Stops at the first miss (hashes are chained) and never covers the last token: at
        most ``request.get_max_cache_hit_length(max_cache_hit_length) // block_size`` blocks
        (``num_tokens - 1`` unless the request's ``prefix_cache_hit_limit`` or the bound is
        lower), so the model always has at least one token to compute and the logits of
        the last position to sample from.
        """
        _check_request(request)
        check_optional_int("max_cache_hit_length", max_cache_hit_length, 0)
        if not self.enable_caching or request.prefix_cache_hit_limit == 0:
            return [], 0
        request.bind_block_size(self.block_size)
        max_hit_blocks = request.get_max_cache_hit_length(max_cache_hit_length) // self.block_size
        hits = self.block_pool._longest_cache_hit(request.block_hashes[:max_hit_blocks])
        num_hit_tokens = len(hits) * self.block_size
        # Recorded by the first allocate_slots that succeeds, so a request the scheduler
        # looks up again on every retry of a blocked queue head counts once (vLLM #43736).
        self._prefix_stats.note_lookup(request.request_id, request.num_tokens, num_hit_tokens)
        return hits, num_hit_tokens

    def get_num_cached_tokens(self, request: Request) -> int:
        """Tokens of ``request`` a lookup would find in the prefix cache, without side effects.

        vLLM 0.34's probe: the same answer as :meth:`get_computed_blocks`, but it takes no
        reference, allocates nothing, records no lookup, emits no event and does not bind
        the request's block size (an unbound request is hashed into a scratch list).
        """
        _check_request(request)
        if not self.enable_caching or request.prefix_cache_hit_limit == 0:
            return 0
        bs = self.block_size
        max_hit_blocks = request.get_max_cache_hit_length() // bs
        if request.block_size is None:
            hashes = hash_request_tokens(
                bs,
                request.all_token_ids[: max_hit_blocks * bs],
                lora_id=request.lora_id,
                cache_salt=request.cache_salt,
                mm_hashes=request.mm_hashes,
            )
        elif request.block_size != bs:
            raise RequestStateError(
                f"request {request.request_id!r} is hashed at block_size={request.block_size}, "
                f"this manager uses block_size={bs}"
            )
        else:
            hashes = request.block_hashes[:max_hit_blocks]
        return len(self.block_pool._longest_cache_hit(hashes)) * bs

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
        _check_request(request)
        check_int("num_new_tokens", num_new_tokens, 0)
        pool = self.block_pool
        if new_computed_blocks is None:
            hits: list[KVCacheBlock] = []
        else:
            hits = list(check_block_list(pool, new_computed_blocks, "new_computed_blocks"))
        bs = self.block_size
        rid = request.request_id
        table = self._tables.get(rid)
        if hits and (table is not None or request.num_computed_tokens):
            raise RequestStateError(
                "new_computed_blocks are allowed on a request's first allocation only "
                f"(request {rid!r} already holds blocks or has computed tokens)"
            )
        if hits and (
            request.block_size != bs
            or len(hits) > len(request.block_hashes)
            or any(b.block_hash != h for b, h in zip(hits, request.block_hashes, strict=False))
        ):
            raise RequestStateError(
                "new_computed_blocks must be the blocks get_computed_blocks(request) returned: "
                f"block i cached under request {rid!r}'s hash i"
            )
        num_computed = request.num_computed_tokens + len(hits) * bs
        total = num_computed + num_new_tokens
        if total > request.num_tokens:
            raise RequestStateError(
                f"cannot compute up to token {total}: request {rid!r} has {request.num_tokens} "
                f"tokens ({num_computed} computed + num_new_tokens={num_new_tokens})"
            )
        if self.enable_caching:
            request.bind_block_size(bs)
        blocks = self._req_blocks.get(rid)  # the live list, mutated only after the check
        held = blocks if blocks is not None else []
        num_new_blocks = max(0, -(-total // bs) - len(held) - len(hits))
        # Shared blocks this step writes into must be copied first (copy-on-write).
        first, stop = num_computed // bs, min(-(-total // bs), len(held))
        cow = [i for i in range(first, stop) if held[i].ref_cnt > 1] if num_new_tokens else []
        needed = num_new_blocks + len(cow)
        if hits:  # hit blocks that sit free leave the queue too
            needed += list(map(_ref_cnt_of, hits)).count(0)
        if needed > pool.get_num_free_blocks():
            return None

        if table is None or blocks is None:
            table = self._tables[rid] = BlockTable(bs)
            blocks = self._req_blocks[rid] = []
            self._prefix_stats.admit(rid, request.num_preemptions > 0)
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
        rid = _check_request(request).request_id
        self._prefix_stats.forget(rid)
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
        _check_request(parent, "parent")
        check_request_id("child_request_id", child_request_id)
        ids = self.get_block_ids(parent.request_id)
        if child_request_id in self._tables:
            raise RequestStateError(f"child_request_id {child_request_id!r} is already in use")
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
        table = self._table_of(_check_request(request).request_id)
        return table.slot_mapping(request.num_computed_tokens, num_new_tokens)

    def _table_of(self, request_id: str) -> BlockTable:
        check_request_id("request_id", request_id)
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
        """Prefix-cache lookups since the last :meth:`make_prefix_cache_stats` (a peek).

        A lookup (:meth:`get_computed_blocks`) is recorded when the request's first
        :meth:`allocate_slots` succeeds, with the token and hit counts of its latest lookup;
        a lookup followed by a refused allocation, a retry or :meth:`free` is not counted
        again. A preempted request (``num_preemptions > 0``) that is looked up and admitted
        again counts in the ``preempted_*`` fields.
        """
        return self._prefix_stats.peek()

    def make_prefix_cache_stats(self) -> PrefixCacheStats:
        """Return the stats since the last call and start a new window (vLLM 0.34 drains them)."""
        return self._prefix_stats.drain()

    def take_events(self) -> list[KVCacheEvent]:
        """Return and clear the KV-cache events since the last call."""
        return self.block_pool.take_events()

    def reset_prefix_cache(self) -> bool:
        """Drop every cached block; False (no change) while any request holds blocks.

        On success the current stats window is flagged ``reset=True``, as vLLM 0.34 sets
        ``prefix_cache_stats.reset``.
        """
        if not self.block_pool.reset_prefix_cache():
            return False
        self._prefix_stats.mark_reset()
        return True
