"""BlockPool: allocation, ref counts, lazy eviction, free orders, CoW, events, priorities.

Mirrors the behaviours of ``vllm/v1/core/block_pool.py`` (the Phase 02 mini-build, step 3;
Phase 02 lab-01).
"""

from __future__ import annotations

import pytest
from _allocator_impl import free_block_ids, impl
from _invariants import check_pool

H = [impl.hash_block_tokens(None, [i] * 4) for i in range(64)]


def ids(blocks) -> list[int]:
    return [b.block_id for b in blocks]


@pytest.mark.lab01
def test_null_block_is_reserved() -> None:
    pool = impl.BlockPool(10)
    assert pool.null_block.block_id == 0 and pool.null_block.is_null
    assert pool.get_num_free_blocks() == 9
    assert 0 not in ids(pool.get_new_blocks(9))
    check_pool(pool)


@pytest.mark.lab01
def test_get_new_blocks_pops_head_and_sets_ref_cnt() -> None:
    pool = impl.BlockPool(10)
    blocks = pool.get_new_blocks(3)
    assert ids(blocks) == [1, 2, 3] and all(b.ref_cnt == 1 for b in blocks)
    assert free_block_ids(pool) == [4, 5, 6, 7, 8, 9]
    check_pool(pool)


@pytest.mark.lab01
def test_free_blocks_in_given_order_classic_appends() -> None:
    pool = impl.BlockPool(10)
    blocks = pool.get_new_blocks(3)
    pool.free_blocks(reversed(blocks))
    assert free_block_ids(pool) == [4, 5, 6, 7, 8, 9, 3, 2, 1]
    check_pool(pool)


@pytest.mark.extended
def test_free_order_fresh_first_matches_vllm_033() -> None:
    # vLLM 0.33 (PR #42656): pool of 10, allocate [1,2,3] (no hashes), free reversed -> [3,2,1,4..9]
    pool = impl.BlockPool(10, free_order="fresh_first")
    blocks = pool.get_new_blocks(3)
    pool.free_blocks(reversed(blocks))
    assert free_block_ids(pool) == [3, 2, 1, 4, 5, 6, 7, 8, 9]
    check_pool(pool)


@pytest.mark.extended
def test_fresh_first_keeps_cached_blocks_at_the_tail() -> None:
    pool = impl.BlockPool(8, free_order="fresh_first")
    a, b, c = pool.get_new_blocks(3)
    pool.cache_full_blocks([a, b], H[:2])
    pool.free_blocks([c, b, a])  # c is a partial, unhashed tail
    assert free_block_ids(pool) == [3, 4, 5, 6, 7, 2, 1]
    assert ids(pool.get_new_blocks(1)) == [3]  # reused before any cached block is evicted
    assert pool.get_cached_block(H[0]) is a and pool.get_cached_block(H[1]) is b
    check_pool(pool)


@pytest.mark.lab01
def test_shared_block_frees_only_at_zero() -> None:
    pool = impl.BlockPool(4)
    (b,) = pool.get_new_blocks(1)
    pool.touch([b])
    assert b.ref_cnt == 2
    pool.free_blocks([b])
    assert b.ref_cnt == 1 and b.block_id not in free_block_ids(pool)
    pool.free_blocks([b])
    assert b.ref_cnt == 0 and free_block_ids(pool)[-1] == b.block_id
    check_pool(pool)


@pytest.mark.lab01
def test_lazy_eviction_keeps_hash_until_reuse() -> None:
    pool = impl.BlockPool(3)
    a, b = pool.get_new_blocks(2)
    pool.cache_full_blocks([a, b], H[:2])
    pool.free_blocks([b, a])
    assert pool.get_cached_block(H[0]) is a and a.block_hash == H[0]  # lingers while free
    (reused,) = pool.get_new_blocks(1)
    assert reused is b and b.block_hash is None  # the tail went first
    assert pool.get_cached_block(H[1]) is None and pool.get_cached_block(H[0]) is a
    check_pool(pool)


@pytest.mark.lab01
def test_touch_revives_a_free_cached_block_from_the_middle() -> None:
    pool = impl.BlockPool(6)
    blocks = pool.get_new_blocks(5)
    pool.cache_full_blocks(blocks, H[:5])
    pool.free_blocks(blocks)
    hit = pool.get_cached_block(H[2])
    pool.touch([hit])
    assert hit.ref_cnt == 1 and free_block_ids(pool) == [1, 2, 4, 5]
    check_pool(pool)


@pytest.mark.lab01
def test_touch_skips_the_null_block() -> None:
    pool = impl.BlockPool(4)
    pool.touch([pool.null_block])
    assert 0 not in free_block_ids(pool)
    check_pool(pool)


@pytest.mark.lab01
def test_usage_excludes_the_null_block() -> None:
    # Phase 02 exercises, ex. 8: 0.0 with only the null block used, 1.0 when all are handed out.
    pool = impl.BlockPool(5)
    assert pool.get_usage() == 0.0
    got = pool.get_new_blocks(2)
    assert pool.get_usage() == pytest.approx(0.5)
    got += pool.get_new_blocks(2)
    assert pool.get_usage() == 1.0
    pool.cache_full_blocks(got[:1], H[:1])
    pool.free_blocks(got)
    assert pool.get_usage() == 0.0  # cached free blocks count as free (vLLM issue #5176)


@pytest.mark.lab01
def test_cache_full_blocks_skips_already_cached() -> None:
    pool = impl.BlockPool(4)
    (a,) = pool.get_new_blocks(1)
    pool.cache_full_blocks([a], H[:1])
    pool.cache_full_blocks([a], H[:1])
    assert pool.get_cached_block(H[0]) is a
    check_pool(pool)


@pytest.mark.extended
def test_duplicate_content_first_writer_stays_indexed() -> None:
    pool = impl.BlockPool(4)
    a, b = pool.get_new_blocks(2)
    pool.cache_full_blocks([a], H[:1])
    pool.cache_full_blocks([b], H[:1])
    assert pool.get_cached_block(H[0]) is a and b.block_hash is None
    check_pool(pool)


@pytest.mark.extended
def test_caching_disabled_indexes_nothing() -> None:
    pool = impl.BlockPool(4, enable_caching=False)
    (a,) = pool.get_new_blocks(1)
    pool.cache_full_blocks([a], H[:1])
    assert pool.get_cached_block(H[0]) is None and a.block_hash is None
    check_pool(pool)


@pytest.mark.lab01
def test_reset_prefix_cache_is_all_or_nothing() -> None:
    pool = impl.BlockPool(5)
    a, b = pool.get_new_blocks(2)
    pool.cache_full_blocks([a, b], H[:2])
    pool.free_blocks([b])
    assert pool.reset_prefix_cache() is False
    assert pool.get_cached_block(H[1]) is b and pool.get_cached_block(H[0]) is a
    pool.free_blocks([a])
    assert pool.reset_prefix_cache() is True
    assert pool.get_cached_block(H[0]) is None and a.block_hash is None
    assert pool.get_num_free_blocks() == 4
    check_pool(pool)


@pytest.mark.extended
def test_reset_prefix_cache_events() -> None:
    pool = impl.BlockPool(5, enable_kv_cache_events=True)
    (a,) = pool.get_new_blocks(1)
    pool.cache_full_blocks([a], H[:1])
    pool.take_events()
    assert pool.reset_prefix_cache() is False and pool.take_events() == []
    pool.free_blocks([a])
    assert pool.reset_prefix_cache() is True
    assert pool.take_events() == [impl.AllBlocksCleared()]


@pytest.mark.cow
def test_fork_block_copy_on_write() -> None:
    # Phase 02 exercises, ex. 7: two requests share a block, one forks, the other's view
    # is unchanged.
    pool = impl.BlockPool(4)
    (shared,) = pool.get_new_blocks(1)
    pool.touch([shared])
    table_a, table_b = [shared], [shared]
    table_b[0] = pool.fork_block(shared)
    assert table_a[0] is shared and shared.ref_cnt == 1
    assert table_b[0] is not shared and table_b[0].ref_cnt == 1
    check_pool(pool)


@pytest.mark.cow
def test_fork_block_of_a_private_block_is_itself() -> None:
    pool = impl.BlockPool(4)
    (b,) = pool.get_new_blocks(1)
    assert pool.fork_block(b) is b and pool.get_num_free_blocks() == 2


@pytest.mark.extended
def test_fork_block_of_a_cached_block_copies_and_keeps_the_cache() -> None:
    pool = impl.BlockPool(4)
    (b,) = pool.get_new_blocks(1)
    pool.cache_full_blocks([b], H[:1])
    new = pool.fork_block(b)
    assert new is not b and b.ref_cnt == 0 and pool.get_cached_block(H[0]) is b
    check_pool(pool)


@pytest.mark.extended
def test_events_stored_removed_cleared() -> None:
    pool = impl.BlockPool(3, enable_kv_cache_events=True, block_size=4)
    a, b = pool.get_new_blocks(2)
    pool.cache_full_blocks([a, b], H[:2], token_ids=[0] * 4 + [1] * 4, lora_id=7)
    (stored,) = pool.take_events()
    assert stored == impl.BlockStored((H[0], H[1]), None, (0,) * 4 + (1,) * 4, 4, 7)
    assert pool.take_events() == []
    pool.free_blocks([b, a])
    pool.get_new_blocks(1)
    assert pool.take_events() == [impl.BlockRemoved((H[1],))]


@pytest.mark.extended
def test_events_split_around_duplicates_keep_parent_chain() -> None:
    pool = impl.BlockPool(6, enable_kv_cache_events=True)
    (x,) = pool.get_new_blocks(1)
    pool.cache_full_blocks([x], H[1:2])  # H[1] already held elsewhere
    pool.take_events()
    blocks = pool.get_new_blocks(3)
    pool.cache_full_blocks(blocks, H[:3], parent_block_hash=H[9])
    first, second = pool.take_events()
    assert first.block_hashes == (H[0],) and first.parent_block_hash == H[9]
    assert second.block_hashes == (H[2],) and second.parent_block_hash == H[1]


@pytest.mark.extended
def test_events_off_by_default() -> None:
    pool = impl.BlockPool(3)
    (a,) = pool.get_new_blocks(1)
    pool.cache_full_blocks([a], H[:1])
    assert pool.take_events() == []


@pytest.mark.extended
def test_retention_priority_evicts_pinned_prefix_last() -> None:
    pool = impl.BlockPool(7)
    blocks = pool.get_new_blocks(6)
    pool.cache_full_blocks(blocks[:2], H[:2], retention_priority=impl.RetentionPriority.PINNED)
    pool.cache_full_blocks(blocks[2:4], H[2:4], retention_priority=impl.RetentionPriority.HIGH)
    pool.cache_full_blocks(blocks[4:], H[4:6])
    pool.free_blocks(blocks)  # pinned blocks freed first, i.e. oldest in plain LRU terms
    assert free_block_ids(pool) == [5, 6, 3, 4, 1, 2]
    order = [pool.get_new_blocks(1)[0].block_id for _ in range(6)]
    assert order == [5, 6, 3, 4, 1, 2]
    check_pool(pool)


@pytest.mark.extended
def test_pinned_blocks_still_yield_when_nothing_else_is_free() -> None:
    pool = impl.BlockPool(3)
    blocks = pool.get_new_blocks(2)
    pool.cache_full_blocks(blocks, H[:2], retention_priority=2)
    pool.free_blocks(blocks)
    assert len(pool.get_new_blocks(2)) == 2 and pool.get_cached_block(H[0]) is None
    check_pool(pool)


@pytest.mark.extended
def test_set_retention_priority_moves_a_free_block() -> None:
    pool = impl.BlockPool(5)
    blocks = pool.get_new_blocks(4)
    pool.cache_full_blocks(blocks, H[:4])
    pool.free_blocks(blocks)
    pool.set_retention_priority([blocks[0]], impl.RetentionPriority.HIGH)
    assert free_block_ids(pool) == [2, 3, 4, 1]
    pool.touch([blocks[0]])  # removal from a higher level's queue keeps counts right
    check_pool(pool)
    pool.free_blocks([blocks[0]])
    assert pool.reset_prefix_cache() and blocks[0].retention_priority == 0
    check_pool(pool)
