"""Checks shared by the hybrid, offload and residency tests: pool invariants and naive models.

``check_groups`` asserts, for a pool shared by several KV-cache groups, that every
non-null block is in exactly one place (the free queue, or the tables of one group),
that ``ref_cnt`` equals the number of tables holding it, that free + in use == N - 1 and
that every cached block in a table holds the key its position names. ``naive_hit``
recomputes the hybrid prefix hit by brute force over all candidate lengths.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from block_allocator.hybrid import HybridKVCacheManager


def snapshot(pool: Any) -> tuple[Any, ...]:
    """Everything observable about a pool's blocks, for 'nothing changed' checks."""
    return (
        tuple((b.ref_cnt, b.block_hash) for b in pool.blocks),
        tuple(b.block_id for b in pool.get_free_blocks()),
        pool.num_cached_blocks,
    )


def check_pool_tables(pool: Any, tables: Mapping[tuple[str, int], Sequence[Any]]) -> None:
    """Block placement, ref counts and accounting for tables keyed by (request, group)."""
    null = pool.null_block
    free = pool.get_free_blocks()
    free_ids = [b.block_id for b in free]
    assert len(free_ids) == len(set(free_ids)), "a block is twice in the free queue"
    assert 0 not in free_ids and null.block_hash is None
    holders: Counter[int] = Counter()
    group_of: dict[int, int] = {}
    for (_, group), table in tables.items():
        for b in table:
            if b.is_null:
                continue
            holders[b.block_id] += 1
            assert group_of.setdefault(b.block_id, group) == group, (
                f"block {b.block_id} is in the tables of two groups"
            )
    for b in pool.blocks[1:]:
        assert b.ref_cnt == holders[b.block_id], (
            f"block {b.block_id}: ref_cnt {b.ref_cnt}, held by {holders[b.block_id]} tables"
        )
        in_queue = b.prev_free is not None
        assert in_queue == (b.ref_cnt == 0), f"block {b.block_id}: queued={in_queue}"
        if b.block_hash is not None:
            assert pool.get_cached_block(b.block_hash) is b
    assert len(free) == pool.get_num_free_blocks()
    assert len(free) + len(holders) == pool.num_blocks - 1


def check_hybrid(mgr: HybridKVCacheManager, requests: Mapping[str, Any]) -> None:
    """All of the above for a hybrid manager, plus cached keys match positions."""
    tables = {}
    for rid, req in requests.items():
        if rid not in mgr.managers[0].req_to_blocks:
            continue
        keys = mgr.group_keys(req)
        for g, blocks in enumerate(mgr.get_blocks(rid)):
            tables[rid, g] = blocks
            for i, b in enumerate(blocks):
                if not b.is_null and b.block_hash is not None:
                    assert i < len(keys[g]) and b.block_hash == keys[g][i], (
                        f"request {rid} group {g} block {i} holds a stale key"
                    )
    for m in mgr.managers:
        assert set(m.req_to_blocks) <= set(requests), "a table outlived its request"
    check_pool_tables(mgr.block_pool, tables)


def servable(mgr: HybridKVCacheManager, g: int, keys: Sequence[bytes], k: int) -> bool:
    """Can group ``g`` serve a hit of ``k`` blocks, given what the pool caches now?"""
    m = mgr.managers[g]
    cached = [mgr.block_pool.get_cached_block(key) is not None for key in keys[:k]]
    kind = type(m).__name__
    if k == 0:
        return True
    if kind == "FullAttentionManager":
        return all(cached)
    if kind == "SlidingWindowManager":
        need = m.num_contiguous_blocks
        return all(cached) if k < need else all(cached[k - need :])
    if kind == "ChunkedLocalAttentionManager":
        per_chunk = m.attention_chunk_size // m.block_size
        return all(cached[k // per_chunk * per_chunk :])
    if kind == "MambaManager":
        return cached[k - 1]
    raise AssertionError(kind)


def naive_hit(mgr: HybridKVCacheManager, request: Any) -> int:
    """The longest hit (tokens) every group can serve, by trying every length."""
    bs = mgr.block_size
    keys = mgr.group_keys(request)
    max_k = min((request.num_tokens - 1) // bs, len(keys[0]))
    for k in range(max_k, -1, -1):
        if all(servable(mgr, g, keys[g], k) for g in range(mgr.num_groups)):
            return k * bs
    raise AssertionError("k == 0 is always servable")
