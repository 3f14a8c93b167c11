"""The biography of a cached block (Phase 02 lab-05, "share and evict").

Two identical prompts converge on the same physical blocks, freed blocks linger as
eviction candidates, eviction consumes tails before shared prefixes, a newcomer revives
blocks from the middle of the free queue, the last token is always recomputed, and an
exactly-sized pool counts every block. Classic free order throughout.
"""

from __future__ import annotations

import pytest
from _allocator_impl import free_block_ids, impl
from _invariants import check_manager, manager_snapshot

pytestmark = pytest.mark.lab05

BS = 4
PREFIX = [11, 12, 13, 14, 15, 16, 17, 18]  # two full blocks


def admit(mgr, req) -> list:
    hits, num_hit = mgr.get_computed_blocks(req)
    assert mgr.allocate_slots(req, req.num_tokens - num_hit, hits) is not None
    req.num_computed_tokens = req.num_tokens
    return hits


def blocks_of(mgr, rid: str) -> list:
    return [mgr.block_pool.blocks[i] for i in mgr.get_block_ids(rid)]


def test_identical_prompts_converge_on_the_same_blocks() -> None:
    mgr = impl.KVCacheManager(16, BS)
    a = impl.Request("a", [*PREFIX, 99])
    b = impl.Request("b", [*PREFIX, 99])
    admit(mgr, a)
    hits = admit(mgr, b)
    ba, bb = blocks_of(mgr, "a"), blocks_of(mgr, "b")
    assert hits == ba[:2] and bb[:2] == ba[:2]
    assert [blk.ref_cnt for blk in ba[:2]] == [2, 2]
    assert bb[2] is not ba[2] and ba[2].ref_cnt == 1  # the partial tail is private
    check_manager(mgr, {"a": a, "b": b})


def test_freed_blocks_linger_as_eviction_candidates() -> None:
    mgr = impl.KVCacheManager(16, BS)
    a = impl.Request("a", [*PREFIX, 99])
    admit(mgr, a)
    full = blocks_of(mgr, "a")[:2]
    mgr.free(a)
    pool = mgr.block_pool
    assert all(blk.ref_cnt == 0 for blk in full)
    assert {blk.block_id for blk in full} <= set(free_block_ids(pool))
    assert [pool.get_cached_block(h) for h in a.block_hashes] == full
    assert mgr.num_free_blocks == 15 and mgr.usage == 0.0


def test_eviction_takes_tails_before_shared_prefixes() -> None:
    # Phase 02 exercises, ex. 6 and 9: reverse-order free puts the prefix behind the tails.
    mgr = impl.KVCacheManager(9, BS)  # 8 usable blocks
    a = impl.Request("a", [*PREFIX, 1, 1, 1, 1, 2, 2, 2, 2])  # prefix + 2 own blocks
    b = impl.Request("b", [*PREFIX, 3, 3, 3, 3, 4, 4, 4, 4])
    admit(mgr, a)
    admit(mgr, b)
    prefix = blocks_of(mgr, "a")[:2]
    mgr.free(a)
    mgr.free(b)
    queue = free_block_ids(mgr.block_pool)
    assert queue[-2:] == [prefix[1].block_id, prefix[0].block_id]  # prefix last, root last of all
    assert queue.index(prefix[1].block_id) > queue.index(blocks_of_ids(b, mgr)[-1])
    # Evict everything but two blocks: both prefixes' tails go, the shared prefix stays.
    mgr.block_pool.free_blocks(mgr.block_pool.get_new_blocks(6))
    c = impl.Request("c", [*PREFIX, 5])
    assert mgr.get_computed_blocks(c)[1] == 8


def blocks_of_ids(req, mgr) -> list[int]:
    return [mgr.block_pool.get_cached_block(h).block_id for h in req.block_hashes]


def test_forward_order_free_would_evict_the_prefix_early() -> None:
    # The counterexample of the Phase 02 exercises, ex. 6, on the raw pool: freeing head first puts
    # the shared root at the front of the queue, ahead of the tails.
    pool = impl.BlockPool(6)
    root, tail = pool.get_new_blocks(2)
    pool.cache_full_blocks([root, tail], [impl.hash_block_tokens(None, [1]), b"t" * 32])
    pool.free_blocks([root, tail])  # forward order (wrong)
    assert free_block_ids(pool).index(root.block_id) < free_block_ids(pool).index(tail.block_id)


def test_newcomer_revives_blocks_from_the_middle_of_the_queue() -> None:
    mgr = impl.KVCacheManager(12, BS)
    a = impl.Request("a", [*PREFIX, 1, 1, 1, 1, 5])
    admit(mgr, a)
    mgr.free(a)
    other = impl.Request("o", [7] * 9)
    admit(mgr, other)
    mgr.free(other)  # the prefix now sits mid-queue, with o's blocks behind it
    pool = mgr.block_pool
    queue = free_block_ids(pool)
    prefix_ids = [pool.get_cached_block(h).block_id for h in a.block_hashes[:2]]
    assert 0 < queue.index(prefix_ids[0]) < len(queue) - 1
    free_before = mgr.num_free_blocks
    c = impl.Request("c", [*PREFIX, 8])
    hits = admit(mgr, c)
    assert [blk.block_id for blk in hits] == prefix_ids
    assert mgr.num_free_blocks == free_before - 3  # 2 revived + 1 new tail
    remaining = [i for i in queue if i not in prefix_ids]
    assert free_block_ids(pool) == remaining[1:]  # order of the rest kept; head reused
    check_manager(mgr, {"c": c})


@pytest.mark.parametrize(("num_tokens", "expected_hit"), [(8, 4), (9, 8), (7, 4), (4, 0)])
def test_hits_are_capped_at_num_tokens_minus_one(num_tokens: int, expected_hit: int) -> None:
    mgr = impl.KVCacheManager(16, BS)
    admit(mgr, impl.Request("a", [*PREFIX, 1, 2, 3, 4]))  # everything cached
    req = impl.Request("b", ([*PREFIX, 1, 2, 3, 4])[:num_tokens])
    blocks, num_hit = mgr.get_computed_blocks(req)
    assert num_hit == expected_hit == len(blocks) * BS
    assert num_hit <= num_tokens - 1  # at least the last token is computed again


def test_lookup_stops_at_the_first_miss() -> None:
    mgr = impl.KVCacheManager(16, BS)
    a = impl.Request("a", [*PREFIX, 1, 2, 3, 4, 5])  # 3 full blocks + 1 token
    admit(mgr, a)
    mgr.free(a)
    pool = mgr.block_pool
    keep = [pool.get_cached_block(a.block_hashes[i]) for i in (0, 2)]
    pool.touch(keep)  # hold blocks 0 and 2, evict everything else (block 1 included)
    pool.free_blocks(pool.get_new_blocks(pool.get_num_free_blocks()))
    pool.free_blocks(keep)
    assert pool.get_cached_block(a.block_hashes[1]) is None
    assert pool.get_cached_block(a.block_hashes[2]) is keep[1]
    hits, num_hit = mgr.get_computed_blocks(impl.Request("b", [*PREFIX, 1, 2, 3, 4, 5]))
    assert hits == keep[:1] and num_hit == 4  # block 2 is cached but unreachable


def test_exactly_sized_pool_counts_every_block() -> None:
    mgr = impl.KVCacheManager(4, BS)  # null + 3 usable
    a = impl.Request("a", [*PREFIX, 1, 2, 3, 4])  # exactly 3 blocks
    admit(mgr, a)
    assert mgr.num_free_blocks == 0 and mgr.usage == 1.0
    mgr.free(a)
    # b reuses 2 cached blocks (both free) and needs 2 more: 4 > 3 usable -> refuse,
    # even though only 2 *new* blocks are asked for and 3 are free.
    b = impl.Request("b", [*PREFIX, 5, 5, 5, 5, 6])
    before = manager_snapshot(mgr, [])
    hits, num_hit = mgr.get_computed_blocks(b)
    assert num_hit == 8
    assert mgr.allocate_slots(b, b.num_tokens - num_hit, hits) is None
    assert manager_snapshot(mgr, []) == before
    # c reuses 2 and needs 1: exactly 3 -> fits, every block in use.
    c = impl.Request("c", [*PREFIX, 5, 5, 5])
    admit(mgr, c)
    assert mgr.num_free_blocks == 0
    check_manager(mgr, {"c": c})
