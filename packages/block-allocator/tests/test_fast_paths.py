"""The hot paths: single-pass free_blocks, trusted Request construction, bulk hashing,
the manager's unchecked block-table extension and the once-per-admission statistics.

Each fast path must be indistinguishable from the checked path it replaces: same queue
order in both free orders, same hashes, same errors, and a failure midway leaves the pool
exactly as it was.
"""

from __future__ import annotations

from typing import Any

import pytest
from _allocator_impl import free_block_ids, impl
from _invariants import check_pool, pool_snapshot
from hypothesis import given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.extended

H = [impl.hash_block_tokens(None, [i] * 4) for i in range(16)]
ORDERS = ["classic", "fresh_first"]


def mixed_pool(free_order: str, num_blocks: int = 12) -> tuple[Any, list[Any]]:
    """Blocks 1..6 in use: 1-3 cached, 2 and 5 shared (ref_cnt 2); a cached block lingers free."""
    pool = impl.BlockPool(num_blocks, free_order=free_order, block_size=4)
    blocks = pool.get_new_blocks(7)
    pool.cache_full_blocks(blocks[:3], H[:3])
    pool.cache_full_blocks(blocks[6:7], H[6:7])
    pool.free_blocks(blocks[6:7])  # cached and free: sits in the queue
    pool.touch([blocks[1], blocks[4]])
    return pool, blocks[:6]


def expected_queue(pool: Any, order: list[Any]) -> list[int]:
    """The free queue after freeing ``order``, computed from the documented rules."""
    before = free_block_ids(pool)
    refs = {id(b): b.ref_cnt for b in order}
    zero: list[Any] = []
    for b in order:
        refs[id(b)] -= 1
        if refs[id(b)] == 0:
            zero.append(b)
    if pool.free_order == "fresh_first":
        head = [b.block_id for b in zero if b.block_hash is None]
        tail = [b.block_id for b in zero if b.block_hash is not None]
        return head + before + tail
    return before + [b.block_id for b in zero]


@pytest.mark.parametrize("free_order", ORDERS)
@given(data=st.data())
@settings(max_examples=60, deadline=None)
def test_free_blocks_matches_the_documented_order(free_order: str, data: st.DataObject) -> None:
    pool, blocks = mixed_pool(free_order)
    order = data.draw(st.permutations(blocks))
    order += data.draw(st.lists(st.sampled_from([blocks[1], blocks[4]]), max_size=2, unique=True))
    expected = expected_queue(pool, order)
    pool.free_blocks(iter(order))  # any iterable, not only lists
    assert free_block_ids(pool) == expected
    check_pool(pool)


@pytest.mark.parametrize("free_order", ORDERS)
def test_free_blocks_into_an_empty_queue(free_order: str) -> None:
    # Every block in use: the head and tail runs meet at the sentinels.
    pool = impl.BlockPool(7, free_order=free_order, block_size=4)
    blocks = pool.get_new_blocks(6)
    pool.cache_full_blocks(blocks[:2], H[:2])
    assert pool.get_num_free_blocks() == 0
    expected = expected_queue(pool, blocks[::-1])
    pool.free_blocks(blocks[::-1])
    assert free_block_ids(pool) == expected
    assert pool.get_num_free_blocks() == 6
    check_pool(pool)


def _bad_tails(pool: Any, blocks: list[Any]) -> list[tuple[Any, type[BaseException], str]]:
    other = impl.BlockPool(4)
    return [
        (blocks[0], impl.DoubleFreeError, "freed more times"),  # a second free in one call
        (pool.null_block, impl.InvalidBlockError, "null block"),
        (other.get_new_blocks(1)[0], impl.ForeignBlockError, "another BlockPool"),
        (pool.blocks[9], impl.DoubleFreeError, "freed more times"),  # a free block
        (3, TypeError, "KVCacheBlocks"),  # not a block at all
    ]


@pytest.mark.parametrize("free_order", ORDERS)
@pytest.mark.parametrize("case", range(5))
@pytest.mark.parametrize("prioritized", [False, True])
def test_failed_free_midway_leaves_the_pool_unchanged(
    free_order: str, case: int, prioritized: bool
) -> None:
    pool, blocks = mixed_pool(free_order)
    if prioritized:  # the multi-queue path
        pool.set_retention_priority([blocks[2]], impl.RetentionPriority.HIGH)
    bad, error, match = _bad_tails(pool, blocks)[case]
    # Before the bad block: a hashed and an unhashed block reaching 0 and a shared one.
    order = [blocks[5], blocks[0], blocks[3], blocks[1], blocks[2], bad, blocks[4]]
    before = pool_snapshot(pool)
    with pytest.raises(error, match=match):
        pool.free_blocks(order)
    assert pool_snapshot(pool) == before
    check_pool(pool)
    # The pool still works: the same free without the bad block succeeds.
    good = [b for b in order if b is not bad]
    if not prioritized:
        expected = expected_queue(pool, good)
    pool.free_blocks(good)
    if not prioritized:
        assert free_block_ids(pool) == expected
    check_pool(pool)


@pytest.mark.parametrize("free_order", ORDERS)
def test_failed_free_into_an_empty_queue_is_undone(free_order: str) -> None:
    pool = impl.BlockPool(5, free_order=free_order, block_size=4)
    blocks = pool.get_new_blocks(4)
    pool.cache_full_blocks(blocks[:1], H[:1])
    before = pool_snapshot(pool)
    with pytest.raises(impl.DoubleFreeError):
        pool.free_blocks([blocks[1], blocks[0], blocks[2], blocks[1]])
    assert pool_snapshot(pool) == before
    check_pool(pool)


# -- Request: cheap checks and the trusted path ---------------------------------------
BAD_TOKENS = [-1, 2**63, 2**64, 1.0, "7", None]


@pytest.mark.parametrize("bad", BAD_TOKENS)
def test_request_rejects_bad_token_ids(bad: object) -> None:
    with pytest.raises(TypeError, match="prompt_token_ids must be non-negative ints"):
        impl.Request("r", [1, 2, bad, 4])
    req = impl.Request("r", [1, 2, 3, 4, 5], block_size=2)
    snapshot = (list(req.all_token_ids), list(req.output_token_ids), list(req.block_hashes))
    with pytest.raises(TypeError, match="token ids must be non-negative ints"):
        req.append_output_token_ids([6, bad])
    if isinstance(bad, int):
        with pytest.raises(TypeError, match="token ids must be non-negative ints"):
            req.append_output_token_ids(bad)
    assert (list(req.all_token_ids), list(req.output_token_ids), list(req.block_hashes)) == (
        snapshot
    )


def test_request_accepts_the_int64_range_edges() -> None:
    req = impl.Request("r", [0, 2**63 - 1], block_size=2)
    req.append_output_token_ids([2**63 - 1, 0])
    assert req.num_tokens == 4 and len(req.block_hashes) == 2


@given(
    prompt=st.lists(st.integers(0, 2**63 - 1), min_size=1, max_size=60),
    outputs=st.lists(st.lists(st.integers(0, 50_000), max_size=7), max_size=6),
    block_size=st.integers(1, 9),
    single=st.booleans(),
)
@settings(max_examples=80, deadline=None)
def test_trusted_request_equals_checked_request(
    prompt: list[int], outputs: list[list[int]], block_size: int, single: bool
) -> None:
    checked = impl.Request("r", prompt, block_size=block_size)
    trusted = impl.Request("r", prompt, block_size=block_size, validate=False)
    for chunk in outputs:
        for req, validate in ((checked, True), (trusted, False)):
            if single:
                for t in chunk:
                    req.append_output_token_ids(t, validate=validate)
            else:
                req.append_output_token_ids(chunk, validate=validate)
    assert list(trusted.all_token_ids) == list(checked.all_token_ids)
    assert trusted.prompt_token_ids == checked.prompt_token_ids == tuple(prompt)
    assert trusted.output_token_ids == checked.output_token_ids
    # Incremental hashes equal the bulk helper and the block-by-block chain.
    tokens = list(checked.all_token_ids)
    assert checked.block_hashes == trusted.block_hashes
    assert checked.block_hashes == impl.hash_request_tokens(block_size, tokens)
    chain: list[bytes] = []
    for i in range(len(tokens) // block_size):
        parent = chain[-1] if chain else None
        chain.append(impl.hash_block_tokens(parent, tokens[i * block_size : (i + 1) * block_size]))
    assert checked.block_hashes == chain


def test_trusted_request_does_not_copy_into_the_callers_list() -> None:
    prompt = [1, 2, 3]
    req = impl.Request("r", prompt, validate=False)
    req.append_output_token_ids([4], validate=False)
    assert prompt == [1, 2, 3] and list(req.all_token_ids) == [1, 2, 3, 4]


def test_hash_request_tokens_checks_parent_and_tokens() -> None:
    with pytest.raises(TypeError, match="parent_hash"):
        impl.hash_request_tokens(2, [1, 2], parent_hash=b"short")
    with pytest.raises(TypeError, match="int64"):
        impl.hash_request_tokens(2, [1, 2**63])
    parent = H[0]
    assert impl.hash_request_tokens(2, [1, 2, 3], parent_hash=parent) == [
        impl.hash_block_tokens(parent, [1, 2])
    ]


# -- KVCacheManager: block tables and statistics ---------------------------------------
def test_manager_tables_follow_pool_ids_while_the_public_table_validates() -> None:
    mgr = impl.KVCacheManager(16, 4)
    req = impl.Request("r", list(range(10)))
    new = mgr.allocate_slots(req, 10)
    assert mgr.get_block_ids("r") == [b.block_id for b in new]
    table = mgr.get_block_table("r")
    for bad, error in ((-1, ValueError), (1.5, TypeError), (True, TypeError)):
        with pytest.raises(error, match="block id"):
            table.extend([5, bad])
        with pytest.raises(error, match="block id"):
            table.append(bad)
    assert table.block_ids == [b.block_id for b in new]  # the failed extends changed nothing
    req.num_computed_tokens = 10
    req.append_output_token_ids([1, 2, 3])
    more = mgr.allocate_slots(req, 3)
    assert more is not None and len(more) == 1
    assert mgr.get_block_ids("r") == [b.block_id for b in new + more]
    last, extra = new[2].block_id * 4, more[0].block_id * 4
    assert mgr.slot_mapping(req, 3) == [last + 2, last + 3, extra]


def lookup_and_allocate(mgr: Any, req: Any) -> Any:
    hits, num_hit = mgr.get_computed_blocks(req)
    return mgr.allocate_slots(req, req.num_tokens - num_hit, hits)


def test_a_blocked_queue_head_is_counted_once() -> None:
    mgr = impl.KVCacheManager(5, 4)  # 4 usable blocks
    a = impl.Request("a", list(range(12)))
    assert lookup_and_allocate(mgr, a) is not None
    a.num_computed_tokens = 12
    b = impl.Request("b", [*range(8), 99, 98, 97, 96, 95, 94])  # 2 hits + 2 new blocks
    for _ in range(3):  # the scheduler retries its blocked queue head every step
        assert lookup_and_allocate(mgr, b) is None
    assert mgr.prefix_cache_stats == impl.PrefixCacheStats(1, 12, 0)
    mgr.free(a)
    assert lookup_and_allocate(mgr, b) is not None
    assert mgr.prefix_cache_stats == impl.PrefixCacheStats(2, 26, 8)
    b.num_computed_tokens = b.num_tokens
    b.append_output_token_ids(5)
    assert mgr.allocate_slots(b, 1) is not None  # later steps are not lookups
    assert mgr.prefix_cache_stats == impl.PrefixCacheStats(2, 26, 8)


def test_stats_record_the_latest_lookup_and_forget_abandoned_ones() -> None:
    mgr = impl.KVCacheManager(16, 4)
    a = impl.Request("a", list(range(9)))
    assert lookup_and_allocate(mgr, a) is not None
    a.num_computed_tokens = 9
    b = impl.Request("b", list(range(9)))
    mgr.get_computed_blocks(b)  # looked up, then dropped by the caller
    mgr.free(b)  # a request without blocks: forgets the lookup
    assert mgr.allocate_slots(b, 9) is not None  # allocated without a lookup: not counted
    assert mgr.prefix_cache_stats == impl.PrefixCacheStats(1, 9, 0)
    mgr.free(b)
    c = impl.Request("c", list(range(9)))
    _, num_hit = mgr.get_computed_blocks(c)
    c.append_output_token_ids(1)  # a token between lookup and allocation (frag-sim does this)
    assert num_hit == 8
    assert mgr.allocate_slots(c, c.num_tokens - num_hit, mgr.get_computed_blocks(c)[0])
    assert mgr.prefix_cache_stats == impl.PrefixCacheStats(2, 19, 8)


def test_a_preempted_request_counts_again_when_readmitted() -> None:
    mgr = impl.KVCacheManager(16, 4)
    req = impl.Request("r", list(range(9)))
    assert lookup_and_allocate(mgr, req) is not None
    req.num_computed_tokens = 9
    mgr.free(req)  # preempted (recompute)
    req.num_computed_tokens = 0
    assert lookup_and_allocate(mgr, req) is not None
    assert mgr.prefix_cache_stats == impl.PrefixCacheStats(2, 18, 8)


def test_caching_off_records_nothing() -> None:
    mgr = impl.KVCacheManager(16, 4, enable_caching=False)
    req = impl.Request("r", list(range(9)))
    assert lookup_and_allocate(mgr, req) is not None
    assert mgr.prefix_cache_stats == impl.PrefixCacheStats(0, 0, 0)


def test_foreign_hits_are_refused_before_anything_changes() -> None:
    mgr = impl.KVCacheManager(16, 4)
    other = impl.KVCacheManager(16, 4)
    req = impl.Request("r", list(range(9)))
    donor = impl.Request("d", list(range(9)))
    assert lookup_and_allocate(other, donor) is not None
    foreign, _ = other.get_computed_blocks(impl.Request("x", list(range(9))))
    assert foreign
    mgr.get_computed_blocks(req)
    with pytest.raises(impl.ForeignBlockError):
        mgr.allocate_slots(req, 1, foreign)
    with pytest.raises(impl.UnknownRequestError):
        mgr.get_block_ids("r")
    assert mgr.prefix_cache_stats == impl.PrefixCacheStats(0, 0, 0)
    assert lookup_and_allocate(mgr, req) is not None  # the request is still admissible
