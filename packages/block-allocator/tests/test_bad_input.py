"""Bad input: a clear exception naming the problem, and the allocator exactly as it was."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from _allocator_impl import impl
from _invariants import check_pool, manager_snapshot, pool_snapshot

pytestmark = pytest.mark.extended

H = [impl.hash_block_tokens(None, [i] * 4) for i in range(8)]


def busy_pool() -> tuple[Any, list[Any]]:
    """A pool with in-use, shared, cached-free and plain free blocks, events on."""
    pool = impl.BlockPool(10, enable_kv_cache_events=True, block_size=4)
    blocks = pool.get_new_blocks(5)
    pool.cache_full_blocks(blocks[:3], H[:3], token_ids=[0] * 12)
    pool.touch(blocks[:1])
    pool.free_blocks([blocks[2]])
    return pool, blocks


def unchanged(pool: Any, call: Callable[[], object], exc: type[BaseException], match: str) -> None:
    before = pool_snapshot(pool)
    with pytest.raises(exc, match=match):
        call()
    assert pool_snapshot(pool) == before
    check_pool(pool)


@pytest.mark.parametrize("num_blocks", [0, -1, 1])
def test_pool_size_out_of_range(num_blocks: int) -> None:
    with pytest.raises(ValueError, match="num_blocks must be >= 2"):
        impl.BlockPool(num_blocks)


def test_pool_size_wrong_type_and_bad_options() -> None:
    with pytest.raises(TypeError, match="num_blocks"):
        impl.BlockPool(4.0)
    with pytest.raises(TypeError, match="num_blocks"):
        impl.BlockPool(True)
    with pytest.raises(ValueError, match="free_order"):
        impl.BlockPool(4, free_order="lifo")
    with pytest.raises(ValueError, match="block_size"):
        impl.BlockPool(4, block_size=0)


@pytest.mark.parametrize(
    ("block_size", "error"),
    [(0, ValueError), (-4, ValueError), (True, TypeError), (2.5, TypeError)],
)
def test_manager_block_size_out_of_range(block_size: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="block_size"):
        impl.KVCacheManager(8, block_size)


@pytest.mark.parametrize("num_blocks", [0, -3, 1])
def test_manager_num_blocks_out_of_range(num_blocks: int) -> None:
    with pytest.raises(ValueError, match="num_blocks"):
        impl.KVCacheManager(num_blocks, 16)


def test_request_bad_arguments() -> None:
    with pytest.raises(ValueError, match="prompt_token_ids"):
        impl.Request("r", [])
    with pytest.raises(ValueError, match="request_id"):
        impl.Request("", [1])
    with pytest.raises(TypeError, match="prompt_token_ids"):
        impl.Request("r", [1, "2"])
    with pytest.raises(TypeError, match="prompt_token_ids"):
        impl.Request("r", [1, -2])
    with pytest.raises(ValueError, match="retention_priority"):
        impl.Request("r", [1], retention_priority=3)
    req = impl.Request("r", [1, 2])
    with pytest.raises(TypeError, match="token ids"):
        req.append_output_token_ids([3, None])
    assert list(req.all_token_ids) == [1, 2]
    req.bind_block_size(4)
    with pytest.raises(ValueError, match="block_size=4"):
        req.bind_block_size(8)


def test_asking_for_more_blocks_than_free() -> None:
    pool, _ = busy_pool()
    free = pool.get_num_free_blocks()
    unchanged(pool, lambda: pool.get_new_blocks(free + 1), impl.OutOfBlocksError, f"{free} free")
    with pytest.raises(impl.OutOfBlocksError) as info:
        pool.get_new_blocks(free + 1)
    err = info.value
    assert (err.requested, err.available) == (free + 1, free)
    assert isinstance(err, RuntimeError) and isinstance(err, impl.BlockAllocatorError)


def test_negative_block_count() -> None:
    pool, _ = busy_pool()
    unchanged(pool, lambda: pool.get_new_blocks(-1), ValueError, "num_blocks must be >= 0")


def test_double_free() -> None:
    pool, blocks = busy_pool()
    unchanged(pool, lambda: pool.free_blocks([blocks[2]]), impl.DoubleFreeError, "freed more")
    # a list that frees a block more often than it is held: earlier decrements roll back
    unchanged(
        pool,
        lambda: pool.free_blocks([blocks[3], blocks[1], blocks[1]]),
        impl.DoubleFreeError,
        "block 2",
    )


def test_free_the_null_block() -> None:
    pool, blocks = busy_pool()
    unchanged(
        pool,
        lambda: pool.free_blocks([blocks[4], pool.null_block]),
        impl.InvalidBlockError,
        "null block",
    )


def test_cache_the_null_block() -> None:
    pool, _ = busy_pool()
    unchanged(
        pool,
        lambda: pool.cache_full_blocks([pool.null_block], H[5:6]),
        impl.InvalidBlockError,
        "null block",
    )


def test_block_from_another_pool() -> None:
    pool, blocks = busy_pool()
    stranger = impl.BlockPool(10).get_new_blocks(1)[0]
    for call in (
        lambda: pool.free_blocks([blocks[4], stranger]),
        lambda: pool.touch([blocks[3], stranger]),
        lambda: pool.cache_full_blocks([blocks[3], stranger], H[3:5]),
        lambda: pool.fork_block(stranger),
        lambda: pool.set_retention_priority([stranger], 1),
    ):
        unchanged(pool, call, impl.ForeignBlockError, "another BlockPool")


def test_full_block_hash_over_wrong_number_of_tokens() -> None:
    pool, blocks = busy_pool()
    unchanged(
        pool,
        lambda: pool.cache_full_blocks(blocks[3:5], H[3:5], token_ids=[1] * 7),
        ValueError,
        "block_size=4 hold 8 tokens, got 7",
    )
    with pytest.raises(ValueError, match="block_size=4"):
        impl.hash_block_tokens(None, [1, 2, 3], block_size=4)


def test_cache_mismatched_or_conflicting_hashes() -> None:
    pool, blocks = busy_pool()
    unchanged(
        pool,
        lambda: pool.cache_full_blocks(blocks[3:5], H[3:4]),
        ValueError,
        "2 blocks but 1 block_hashes",
    )
    unchanged(
        pool,
        lambda: pool.cache_full_blocks([blocks[3], blocks[0]], [H[3], H[6]]),
        impl.InvalidBlockError,
        "another hash",
    )
    unchanged(pool, lambda: pool.cache_full_blocks([blocks[3]], ["abc"]), TypeError, "bytes")
    unchanged(
        pool, lambda: pool.cache_full_blocks([blocks[2]], H[6:7]), impl.InvalidBlockError, "free"
    )
    unchanged(
        pool,
        lambda: pool.cache_full_blocks(blocks[3:4], H[3:4], retention_priority=5),
        ValueError,
        "retention priority",
    )


def test_fork_a_free_block() -> None:
    pool, blocks = busy_pool()
    unchanged(pool, lambda: pool.fork_block(blocks[2]), impl.InvalidBlockError, "free")
    unchanged(pool, lambda: pool.fork_block(pool.null_block), impl.InvalidBlockError, "null")


def test_fork_block_without_room() -> None:
    pool = impl.BlockPool(3)
    blocks = pool.get_new_blocks(2)
    pool.touch(blocks[:1])
    unchanged(pool, lambda: pool.fork_block(blocks[0]), impl.OutOfBlocksError, "need 1")


def test_manager_bad_calls_change_nothing() -> None:
    mgr = impl.KVCacheManager(8, 4)
    req = impl.Request("r", list(range(6)))
    mgr.allocate_slots(req, 6)
    req.num_computed_tokens = 6
    before = manager_snapshot(mgr, ["r"])
    with pytest.raises(ValueError, match="num_new_tokens must be >= 0"):
        mgr.allocate_slots(req, -1)
    with pytest.raises(ValueError, match="has 6 tokens"):
        mgr.allocate_slots(req, 1)  # no token 7 to compute yet
    other = impl.Request("o", list(range(6)))
    hits, _ = mgr.get_computed_blocks(other)
    with pytest.raises(ValueError, match="first allocation"):
        mgr.allocate_slots(req, 0, hits)
    with pytest.raises(KeyError, match="ghost"):
        mgr.get_block_ids("ghost")
    with pytest.raises(impl.UnknownRequestError):
        mgr.slot_mapping(impl.Request("ghost", [1]), 1)
    with pytest.raises(ValueError, match="outside the block table"):
        mgr.slot_mapping(req, 3)  # positions 6..8 are not allocated
    assert manager_snapshot(mgr, ["r"]) == before
