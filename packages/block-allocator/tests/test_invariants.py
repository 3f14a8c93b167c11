"""One test per invariant (I1-I4 of Phase 02 lab-01, our E1-E4; defined in _invariants.py).

Each test drives the allocator through a scenario that stresses the invariant and checks
it, then corrupts the state the way the matching bug would and shows the check catches it
(so none of these checks can pass vacuously).
"""

from __future__ import annotations

import pytest
from _allocator_impl import IMPL_NAME, impl
from _invariants import check_manager, check_pool

pytestmark = pytest.mark.lab01

BS = 4
_skip_others = pytest.mark.skipif(
    IMPL_NAME != "block_allocator", reason="corrupts block_allocator's private index/queues"
)


def ours_only(test):  # type: ignore[no-untyped-def]
    """A checker self-test that reaches into block_allocator's private structures."""
    return pytest.mark.extended(_skip_others(test))


def scenario():
    """Shared prefix, a fork, a finished request and a revived prefix: every block state."""
    mgr = impl.KVCacheManager(12, BS)
    reqs = {}
    for rid, tokens in (("a", [1] * 9), ("b", [1] * 8 + [2] * 3), ("gone", [5] * 8 + [6])):
        req = impl.Request(rid, tokens)
        hits, n = mgr.get_computed_blocks(req)
        assert mgr.allocate_slots(req, req.num_tokens - n, hits) is not None
        req.num_computed_tokens = req.num_tokens
        reqs[rid] = req
    mgr.free(reqs.pop("gone"))
    if hasattr(mgr, "fork"):  # the mini-build's API has no fork; the scenario works without it
        reqs["a2"] = mgr.fork(reqs["a"], "a2")
    return mgr, reqs


def test_i1_ref_cnt_equals_number_of_holders() -> None:
    mgr, reqs = scenario()
    check_manager(mgr, reqs)
    shared = mgr.block_pool.blocks[mgr.get_block_ids("a")[0]]
    assert shared.ref_cnt == len(reqs)  # a, its fork a2, and b's prefix hit
    shared.ref_cnt += 1  # a leaked reference
    with pytest.raises(AssertionError, match="holders"):
        check_manager(mgr, reqs)


def test_i2_null_block_never_leaves_its_post() -> None:
    pool = impl.BlockPool(4)
    blocks = pool.get_new_blocks(3)
    assert pool.null_block not in blocks
    pool.touch([pool.null_block])
    pool.free_blocks(blocks)
    check_pool(pool)
    pool.null_block.block_hash = b"n" * 32  # a bug that cached the placeholder
    with pytest.raises(AssertionError, match="null block is cached"):
        check_pool(pool)


def test_i3_links_set_exactly_for_queued_blocks() -> None:
    mgr, reqs = scenario()
    check_manager(mgr, reqs)
    in_use = mgr.block_pool.blocks[mgr.get_block_ids("b")[-1]]
    in_use.prev_free = mgr.block_pool.null_block  # a stale link left by a sloppy popleft
    with pytest.raises(AssertionError, match="keeps links"):
        check_manager(mgr, reqs)


def test_i4_cached_block_holds_the_content_its_hash_names() -> None:
    mgr, reqs = scenario()
    check_manager(mgr, reqs)
    pool = mgr.block_pool
    # Every block handed out fresh carries no stale hash from its previous life, and the
    # evicted hashes are gone from the index.
    stale = [b.block_hash for b in pool.blocks if b.block_hash is not None and b.ref_cnt == 0]
    assert stale  # the finished request left cached free blocks
    fresh = pool.get_new_blocks(pool.get_num_free_blocks())
    assert all(b.block_hash is None for b in fresh)
    assert all(pool.get_cached_block(h) is None for h in stale)
    pool.free_blocks(fresh)
    check_manager(mgr, reqs)


@ours_only
def test_i4_check_catches_a_block_cached_under_a_foreign_hash() -> None:
    mgr, reqs = scenario()
    pool = mgr.block_pool
    victim = pool.blocks[mgr.get_block_ids("b")[1]]
    index = pool._index._blocks
    del index[victim.block_hash]  # the bug: re-keyed without rehashing its content
    victim.block_hash = impl.NONE_HASH
    index[victim.block_hash] = victim
    with pytest.raises(AssertionError, match="foreign hash"):
        check_manager(mgr, reqs)


def test_e1_free_queue_is_exactly_the_unreferenced_blocks() -> None:
    mgr, reqs = scenario()
    check_manager(mgr, reqs)
    pool = mgr.block_pool
    for req in reqs.values():
        mgr.free(req)
    check_pool(pool, {})
    assert pool.get_num_free_blocks() == 11
    pool.blocks[5].ref_cnt = 1  # referenced but still queued
    with pytest.raises(AssertionError):
        check_pool(pool)


def test_e2_hash_index_iff_block_hash() -> None:
    mgr, reqs = scenario()
    check_manager(mgr, reqs)
    pool = mgr.block_pool
    assert pool.num_cached_blocks == sum(b.block_hash is not None for b in pool.blocks)
    block = pool.blocks[mgr.get_block_ids("a")[0]]
    block.reset_hash()  # hash dropped without leaving the index
    with pytest.raises(AssertionError, match="index"):
        check_pool(pool)


def test_e3_only_full_blocks_are_hashed() -> None:
    mgr, reqs = scenario()
    check_manager(mgr, reqs)
    for rid, req in reqs.items():
        for i, block_id in enumerate(mgr.get_block_ids(rid)):
            full = (i + 1) * BS <= req.num_tokens
            assert (mgr.block_pool.blocks[block_id].block_hash is not None) == full
    tail = mgr.block_pool.blocks[mgr.get_block_ids("b")[-1]]
    mgr.block_pool.cache_full_blocks([tail], [b"p" * 32])  # a manager bug: caching a partial
    with pytest.raises(AssertionError, match="partial block"):
        check_manager(mgr, reqs)


def test_e4_free_plus_in_use_is_num_blocks_minus_one() -> None:
    mgr, reqs = scenario()
    pool = mgr.block_pool
    in_use = sum(b.ref_cnt > 0 for b in pool.blocks[1:])
    assert pool.get_num_free_blocks() + in_use == pool.num_blocks - 1
    check_manager(mgr, reqs)


@ours_only
def test_e4_check_catches_a_counter_out_of_sync() -> None:
    mgr, _ = scenario()
    mgr.block_pool._queues[0].num_free_blocks += 1
    with pytest.raises(AssertionError):
        check_pool(mgr.block_pool)
