"""The hybrid KV-cache manager: a request's block tables, one per KV-cache group, from one pool.

Mirrors ``KVCacheManager`` in vLLM 0.34.0's ``vllm/v1/core/kv_cache_manager.py`` driving a
``HybridKVCacheCoordinator``: the per-step call order (look up, allocate, advance
``num_computed_tokens``) is the one of :class:`~block_allocator.KVCacheManager`, but
blocks, hits and block ids come as one entry per group.

Each ``allocate_slots`` first frees what the request's windows no longer read (sliding
window, chunked local attention, old Mamba states) and then grows every group's table,
all of it only after checking that the pool can serve the whole step: a refused step
returns None and changes nothing, as in the single-group manager.
"""

from __future__ import annotations

from collections.abc import Sequence

from .._checks import check_block_list, check_bool, check_int, check_optional_int, type_name
from ..block import BlockHash, KVCacheBlock
from ..block_pool import BlockPool
from ..errors import ArgumentTypeError, ArgumentValueError, RequestStateError, UnknownRequestError
from ..events import KVCacheEvent, PrefixCacheStats
from ..request import Request
from .coordinator import HybridKVCacheCoordinator, group_block_hash
from .mamba import MambaManager
from .single_type import (
    ChunkedLocalAttentionManager,
    FullAttentionManager,
    SingleTypeKVCacheManager,
    SlidingWindowManager,
)
from .specs import HybridSpec, check_group_specs, spec_kind

__all__ = ["HybridKVCacheManager"]

_MANAGERS: dict[str, type[SingleTypeKVCacheManager]] = {
    "full": FullAttentionManager,
    "sliding_window": SlidingWindowManager,
    "chunked_local": ChunkedLocalAttentionManager,
    "mamba": MambaManager,
}

HitBlocks = tuple[list[KVCacheBlock], ...]


def _check_request(request: object) -> Request:
    if not isinstance(request, Request):
        raise ArgumentTypeError(f"request must be a Request, got {type_name(request)}")
    return request


class HybridKVCacheManager:
    """Per-group block tables of running requests, all groups sharing one :class:`BlockPool`."""

    def __init__(
        self,
        kv_cache_specs: Sequence[HybridSpec],
        num_blocks: int,
        *,
        enable_caching: bool = True,
        free_order: str = "classic",
        enable_kv_cache_events: bool = False,
    ) -> None:
        self.block_size = check_group_specs(kv_cache_specs)
        check_bool("enable_caching", enable_caching)
        self.kv_cache_specs = tuple(kv_cache_specs)
        self.enable_caching = enable_caching
        self.block_pool = BlockPool(
            num_blocks,
            enable_caching,
            free_order=free_order,
            enable_kv_cache_events=enable_kv_cache_events,
            block_size=self.block_size,
        )
        self.managers = tuple(
            _MANAGERS[spec_kind(spec)](spec, self.block_pool, g, enable_caching)
            for g, spec in enumerate(self.kv_cache_specs)
        )
        self.coordinator = HybridKVCacheCoordinator(self.managers)
        self._keys: dict[str, list[list[BlockHash]]] = {}  # request id -> keys per group g > 0
        self._lookups: dict[str, tuple[int, int]] = {}  # id -> (tokens, hit tokens), unrecorded
        # Since the last make_prefix_cache_stats, as in KVCacheManager: requests, queried and
        # hit tokens, the same for requests preempted before, and the reset flag.
        self._stats = [0, 0, 0, 0, 0, 0, 0]

    @property
    def num_groups(self) -> int:
        return len(self.managers)

    # -- prefix cache ---------------------------------------------------------------------
    def group_keys(self, request: Request) -> list[Sequence[BlockHash]]:
        """The request's cache keys in every group (computed once per block and request).

        Binds the request's block size. Keys of a request that is looked up but never
        admitted are kept until :meth:`free`.
        """
        _check_request(request).bind_block_size(self.block_size)
        hashes = request.block_hashes
        derived = self._keys.setdefault(request.request_id, [[] for _ in self.managers[1:]])
        for g, keys in enumerate(derived, start=1):
            for h in hashes[len(keys) :]:
                keys.append(group_block_hash(h, g))
        return [hashes, *derived]

    def get_computed_blocks(
        self, request: Request, max_cache_hit_length: int | None = None
    ) -> tuple[HitBlocks, int]:
        """Longest prefix hit every group can serve: (blocks per group, hit tokens).

        Capped at ``request.get_max_cache_hit_length(max_cache_hit_length)`` tokens, rounded
        down to whole blocks, like the single-group manager. Each group's list is
        ``num_hit_tokens // block_size`` long, with the null block where that group needs no
        block (outside a window, before a Mamba state).
        """
        _check_request(request)
        check_optional_int("max_cache_hit_length", max_cache_hit_length, 0)
        empty: HitBlocks = tuple([] for _ in self.managers)
        if not self.enable_caching or request.prefix_cache_hit_limit == 0:
            return empty, 0
        request.bind_block_size(self.block_size)
        bs = self.block_size
        max_length = request.get_max_cache_hit_length(max_cache_hit_length) // bs * bs
        hits, num_hit = self.coordinator.find_longest_cache_hit(
            self.group_keys(request), max_length
        )
        self._lookups[request.request_id] = (request.num_tokens, num_hit)
        return hits, num_hit

    def align_num_new_tokens(self, request: Request, num_new_tokens: int) -> int:
        """Clip a prefill chunk to end on a block boundary where a Mamba state can be cached.

        vLLM's scheduler does this in ``_mamba_block_aligned_split``; a no-op without a
        Mamba group in ``"align"`` mode or once the prompt is computed.
        """
        _check_request(request)
        check_int("num_new_tokens", num_new_tokens, 0)
        if not any(getattr(m, "mamba_cache_mode", None) == "align" for m in self.managers):
            return num_new_tokens
        bs = self.block_size
        start = request.num_computed_tokens
        end = start + num_new_tokens
        last_boundary = (request.num_tokens - 1) // bs * bs  # last state a hit may reuse
        if start >= last_boundary:
            return num_new_tokens
        boundary = min(end, last_boundary) // bs * bs
        return boundary - start if boundary > start else num_new_tokens

    # -- allocation -----------------------------------------------------------------------
    def allocate_slots(
        self,
        request: Request,
        num_new_tokens: int,
        new_computed_blocks: Sequence[Sequence[KVCacheBlock]] | None = None,
    ) -> HitBlocks | None:
        """Make room for ``num_new_tokens`` more tokens in every group; new blocks per group.

        ``new_computed_blocks`` (from :meth:`get_computed_blocks`, first allocation only)
        start the tables. Returns None, changing nothing, when the pool is too small.
        """
        _check_request(request)
        check_int("num_new_tokens", num_new_tokens, 0)
        rid = request.request_id
        running = rid in self.managers[0].req_to_blocks
        hits = self._check_hits(request, new_computed_blocks)
        num_hit = len(hits[0]) * self.block_size if hits else 0
        if num_hit and (running or request.num_computed_tokens):
            raise RequestStateError(
                "new_computed_blocks are allowed on a request's first allocation only "
                f"(request {rid!r} already holds blocks or has computed tokens)"
            )
        num_computed = request.num_computed_tokens + num_hit
        total = num_computed + num_new_tokens
        if total > request.num_tokens:
            raise RequestStateError(
                f"cannot compute up to token {total}: request {rid!r} has {request.num_tokens} "
                f"tokens ({num_computed} computed + num_new_tokens={num_new_tokens})"
            )
        if self.enable_caching:
            request.bind_block_size(self.block_size)
        computed_before = request.num_computed_tokens
        freed = (
            sum(m.num_freed_by_skip(rid, computed_before) for m in self.managers) if running else 0
        )
        needed = sum(
            m.get_num_blocks_to_allocate(rid, total, hits[g] if hits else [], num_computed)
            for g, m in enumerate(self.managers)
        )
        if needed > self.block_pool.get_num_free_blocks() + freed:
            return None

        if running:
            for m in self.managers:
                m.remove_skipped_blocks(rid, computed_before)
        else:
            self._admit(request)
            # Touch every group's hits before any group allocates, so one group's new
            # blocks cannot evict another group's hits (vLLM issue #33775).
            for g, m in enumerate(self.managers):
                m.add_computed_blocks(rid, hits[g] if hits else [], num_computed)
        new = tuple(m.allocate_new_blocks(rid, total) for m in self.managers)
        if self.enable_caching:
            keys = self.group_keys(request)
            for g, m in enumerate(self.managers):
                m.cache_blocks(request, total, keys[g])
        return new

    def _check_hits(
        self, request: Request, hits: Sequence[Sequence[KVCacheBlock]] | None
    ) -> HitBlocks | None:
        # The hits must be what get_computed_blocks returned: one list per group, equal
        # lengths, and every real block cached under the request's key for its position.
        if hits is None:
            return None
        if not isinstance(hits, (list, tuple)) or len(hits) != len(self.managers):
            raise ArgumentValueError(
                "new_computed_blocks must be None or hold one list per KV-cache group "
                f"({len(self.managers)}), got {type_name(hits)} of length "
                f"{len(hits) if isinstance(hits, (list, tuple)) else '-'}"
            )
        checked = [
            list(check_block_list(self.block_pool, blocks, "new_computed_blocks"))
            for blocks in hits
        ]
        lengths = {len(blocks) for blocks in checked}
        if len(lengths) != 1:
            raise ArgumentValueError(
                f"new_computed_blocks lists must be equally long, got lengths {sorted(lengths)}"
            )
        if lengths == {0}:
            return None
        if request.block_size != self.block_size:
            raise RequestStateError(
                f"new_computed_blocks come from get_computed_blocks(request); request "
                f"{request.request_id!r} was never looked up"
            )
        keys = self.group_keys(request)
        for g, blocks in enumerate(checked):
            for i, b in enumerate(blocks):
                if not b.is_null and (i >= len(keys[g]) or b.block_hash != keys[g][i]):
                    raise RequestStateError(
                        f"new_computed_blocks[{g}][{i}] (block {b.block_id}) is not cached under "
                        f"request {request.request_id!r}'s key for that position"
                    )
        return tuple(checked)

    def _admit(self, request: Request) -> None:
        lookup = self._lookups.pop(request.request_id, None)
        if lookup is not None:
            k = 3 if request.num_preemptions else 0  # vLLM counts preempted requests apart
            self._stats[k] += 1
            self._stats[k + 1] += lookup[0]
            self._stats[k + 2] += lookup[1]

    def free(self, request: Request) -> None:
        """Release every group's blocks of the request, tail first (no-op without blocks)."""
        rid = _check_request(request).request_id
        self._lookups.pop(rid, None)
        self._keys.pop(rid, None)
        for m in self.managers:
            m.free(rid)

    # -- views ----------------------------------------------------------------------------
    def get_blocks(self, request_id: str) -> HitBlocks:
        """The request's blocks per group, in logical order (null where freed or skipped)."""
        if not isinstance(request_id, str):
            raise ArgumentTypeError(f"request_id must be a str, got {type_name(request_id)}")
        if request_id not in self.managers[0].req_to_blocks:
            raise UnknownRequestError(f"request {request_id!r} holds no blocks")
        return tuple(list(m.req_to_blocks[request_id]) for m in self.managers)

    def get_block_ids(self, request_id: str) -> tuple[list[int], ...]:
        """Physical block ids per group (0 = the null block)."""
        return tuple([b.block_id for b in blocks] for blocks in self.get_blocks(request_id))

    def slot_mapping(self, request: Request, num_new_tokens: int) -> tuple[list[int], ...]:
        """Per group, the slots of positions ``num_computed_tokens .. +num_new_tokens-1``."""
        _check_request(request)
        check_int("num_new_tokens", num_new_tokens, 0)
        bs = self.block_size
        start = request.num_computed_tokens
        out = []
        for blocks in self.get_blocks(request.request_id):
            if start + num_new_tokens > len(blocks) * bs:
                raise RequestStateError(
                    f"positions up to {start + num_new_tokens} are not allocated "
                    f"({len(blocks) * bs} slots)"
                )
            out.append(
                [
                    blocks[p // bs].block_id * bs + p % bs
                    for p in range(start, start + num_new_tokens)
                ]
            )
        return tuple(out)

    @property
    def usage(self) -> float:
        return self.block_pool.get_usage()

    @property
    def num_free_blocks(self) -> int:
        return self.block_pool.get_num_free_blocks()

    @property
    def prefix_cache_stats(self) -> PrefixCacheStats:
        """Lookups of admitted requests since the last drain, counted once at admission."""
        s = self._stats
        return PrefixCacheStats(
            requests=s[0],
            queries=s[1],
            hits=s[2],
            reset=bool(s[6]),
            preempted_requests=s[3],
            preempted_queries=s[4],
            preempted_hits=s[5],
        )

    def make_prefix_cache_stats(self) -> PrefixCacheStats:
        """Return the stats since the last call and start a new window (vLLM 0.34 drains)."""
        stats = self.prefix_cache_stats
        self._stats = [0, 0, 0, 0, 0, 0, 0]
        return stats

    def take_events(self) -> list[KVCacheEvent]:
        """Drain the pool's KV-cache events (group g > 0 names keys, see group_block_hash)."""
        return self.block_pool.take_events()

    def reset_prefix_cache(self) -> bool:
        """Drop every cached block; False (no change) while any request holds blocks."""
        if not self.block_pool.reset_prefix_cache():
            return False
        self._stats[6] = 1
        return True
