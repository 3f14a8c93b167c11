"""KVCacheBlock and FreeKVCacheBlockQueue (Phase 02 lab-01; the Phase 02 mini-build, steps 1-2)."""

from __future__ import annotations

import pytest
from _allocator_impl import impl

pytestmark = pytest.mark.lab01


def make(n: int) -> tuple[list, object]:
    blocks = [impl.KVCacheBlock(i) for i in range(n)]
    return blocks, impl.FreeKVCacheBlockQueue(blocks)


def ids(queue) -> list[int]:
    return [b.block_id for b in queue.get_all_free_blocks()]


def test_block_fields_and_reset_hash() -> None:
    b = impl.KVCacheBlock(7)
    assert (b.block_id, b.ref_cnt, b.block_hash) == (7, 0, None)
    assert b.prev_free is None and b.next_free is None
    assert not b.is_null
    b.block_hash = b"x" * 32
    b.reset_hash()
    assert b.block_hash is None


def test_block_equality_is_identity() -> None:
    a, b = impl.KVCacheBlock(3), impl.KVCacheBlock(3)
    assert a == a and a != b  # equal fields, different blocks
    assert len({a, b}) == 2


def test_block_has_slots() -> None:
    b = impl.KVCacheBlock(1)
    assert not hasattr(b, "__dict__")
    with pytest.raises(AttributeError):
        b.colour = "red"  # type: ignore[attr-defined]


def test_queue_order_and_count() -> None:
    blocks, q = make(5)
    assert ids(q) == [0, 1, 2, 3, 4] and q.num_free_blocks == 5
    assert q.popleft() is blocks[0]
    assert [b.block_id for b in q.popleft_n(2)] == [1, 2]
    assert ids(q) == [3, 4] and q.num_free_blocks == 2
    q.append(blocks[0])
    q.append_n([blocks[2], blocks[1]])
    assert ids(q) == [3, 4, 0, 2, 1] and q.num_free_blocks == 5


def test_free_queue_o1_middle_removal() -> None:
    blocks, q = make(6)
    q.remove(blocks[3])
    assert ids(q) == [0, 1, 2, 4, 5] and q.num_free_blocks == 5
    assert blocks[3].prev_free is None and blocks[3].next_free is None
    q.remove(blocks[0])
    q.remove(blocks[5])
    assert ids(q) == [1, 2, 4]
    assert blocks[1].prev_free is not None  # sentinel, never None inside the queue


def test_popped_blocks_are_unlinked() -> None:
    _, q = make(4)
    for b in q.popleft_n(3):
        assert b.prev_free is None and b.next_free is None
    assert q.popleft_n(0) == []


def test_drain_and_refill() -> None:
    blocks, q = make(3)
    q.popleft_n(3)
    assert q.num_free_blocks == 0 and ids(q) == []
    with pytest.raises(impl.OutOfBlocksError):
        q.popleft()
    q.append_n(reversed(blocks))
    assert ids(q) == [2, 1, 0]


def test_popleft_n_too_many_changes_nothing() -> None:
    _, q = make(3)
    with pytest.raises(impl.OutOfBlocksError):
        q.popleft_n(4)
    assert ids(q) == [0, 1, 2] and q.num_free_blocks == 3


@pytest.mark.extended
def test_prepend_n_puts_blocks_first_in_order() -> None:
    blocks, q = make(5)
    q.popleft_n(2)
    q.prepend_n([blocks[1], blocks[0]])
    assert ids(q) == [1, 0, 2, 3, 4] and q.num_free_blocks == 5


@pytest.mark.extended
def test_remove_unlinked_block_raises() -> None:
    blocks, q = make(3)
    q.remove(blocks[1])
    with pytest.raises(impl.InvalidBlockError, match="not in the free queue"):
        q.remove(blocks[1])
    assert ids(q) == [0, 2] and q.num_free_blocks == 2


@pytest.mark.extended
@pytest.mark.parametrize("op", ["append_n", "prepend_n"])
def test_bulk_insert_of_linked_block_rolls_back(op: str) -> None:
    blocks, q = make(4)
    out = q.popleft_n(2)
    before = ids(q), q.num_free_blocks
    with pytest.raises(impl.InvalidBlockError, match="already in a free queue"):
        getattr(q, op)([out[0], blocks[3], out[1]])  # blocks[3] is still queued
    assert (ids(q), q.num_free_blocks) == before
    assert all(b.prev_free is None and b.next_free is None for b in out)


@pytest.mark.extended
def test_append_linked_block_raises() -> None:
    blocks, q = make(2)
    with pytest.raises(impl.InvalidBlockError):
        q.append(blocks[0])
    assert ids(q) == [0, 1]
