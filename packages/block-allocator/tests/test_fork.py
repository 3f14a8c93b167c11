"""Forking a running request: shared blocks, copy-on-write of the partial tail.

The 'PagedAttention from scratch in 300 lines' capstone, step 04, and the Phase 02
exercises, ex. 7; vLLM v0's ``BlockSpaceManager.fork``. The capstone's
checkpoint says "fork at position 100 ... blocks 0-6 stay shared, blocks 7+ diverge". With
``block_size = 16`` that is off by one: position 100 lies in block 6 (positions 96-111),
which holds only 4 tokens at the fork, so the first write into it copies it. Correct
statement: blocks 0-5 (positions 0-95) stay shared; block 6 is copied once, by whichever
branch writes first (the other branch keeps the original); blocks 7+ diverge. "Blocks 0-6
stay shared" holds for a fork at position 112, where block 6 is full.
"""

from __future__ import annotations

import random

import pytest
from _allocator_impl import impl
from _invariants import check_manager, manager_snapshot
from _kv_model import KVModel

pytestmark = pytest.mark.cow


def start(mgr, model: KVModel, rid: str, tokens: list[int]):
    req = impl.Request(rid, tokens)
    hits, num_hit = mgr.get_computed_blocks(req)
    assert mgr.allocate_slots(req, req.num_tokens - num_hit, hits) is not None
    req.num_computed_tokens = num_hit
    model.step(mgr, req, req.num_tokens - num_hit)
    return req


def decode(mgr, model: KVModel, req, token: int) -> None:
    req.append_output_token_ids(token)
    assert mgr.allocate_slots(req, 1) is not None
    model.step(mgr, req, 1)


@pytest.mark.parametrize("first_writer", ["parent", "child"])
def test_capstone_fork_at_position_100(first_writer: str) -> None:
    bs = 16
    mgr = impl.KVCacheManager(64, bs)
    model = KVModel(bs)
    rng = random.Random(3)
    parent = start(mgr, model, "p", [rng.randrange(32_000) for _ in range(100)])
    child = mgr.fork(parent, "c")
    shared_before = mgr.get_block_ids("p")
    assert mgr.get_block_ids("c") == shared_before and len(shared_before) == 7
    assert all(mgr.block_pool.blocks[i].ref_cnt == 2 for i in shared_before)
    order = [parent, child] if first_writer == "parent" else [child, parent]
    for _ in range(50):
        for req in order:
            decode(mgr, model, req, rng.randrange(32_000))
    p_ids, c_ids = mgr.get_block_ids("p"), mgr.get_block_ids("c")
    assert p_ids[:6] == c_ids[:6] == shared_before[:6]  # blocks 0-5 stay shared
    assert p_ids[6] != c_ids[6]  # the partial block 6 diverged by one copy ...
    writer = mgr.get_block_ids(order[0].request_id)
    other = mgr.get_block_ids(order[1].request_id)
    assert other[6] == shared_before[6] and writer[6] != shared_before[6]
    assert model.copies == [(shared_before[6], writer[6])]
    assert not set(p_ids[6:]) & set(c_ids[6:])  # ... and everything after diverges
    assert len(p_ids) == len(c_ids) == 10  # 150 tokens = 9 full blocks + 6
    model.check(mgr, parent)
    model.check(mgr, child)
    check_manager(mgr, {"p": parent, "c": child})


def test_fork_reports_exactly_one_copy_with_src_and_dst() -> None:
    mgr = impl.KVCacheManager(16, 4)
    model = KVModel(4)
    parent = start(mgr, model, "p", [1, 2, 3, 4, 5, 6])  # block 1 holds 2 tokens
    child = mgr.fork(parent, "c")
    tail = mgr.get_block_ids("p")[1]
    parent.append_output_token_ids(7)
    mgr.allocate_slots(parent, 1)
    new_tail = mgr.get_block_ids("p")[1]
    assert mgr.take_blocks_to_copy() == [(tail, new_tail)]
    assert mgr.take_blocks_to_copy() == []  # drained
    child.append_output_token_ids(8)
    mgr.allocate_slots(child, 1)
    assert mgr.get_block_ids("c")[1] == tail and mgr.take_blocks_to_copy() == []


def test_fork_at_a_block_boundary_needs_no_copy() -> None:
    mgr = impl.KVCacheManager(16, 4)
    model = KVModel(4)
    parent = start(mgr, model, "p", list(range(8)))
    child = mgr.fork(parent, "c")
    for t in (50, 51):
        decode(mgr, model, parent, t)
        decode(mgr, model, child, t + 10)
    assert mgr.take_blocks_to_copy() == []
    assert mgr.get_block_ids("p")[:2] == mgr.get_block_ids("c")[:2]
    assert mgr.get_block_ids("p")[2] != mgr.get_block_ids("c")[2]
    model.check(mgr, parent)
    model.check(mgr, child)


def test_n_way_fork_counts_references_per_block() -> None:
    # capstone watch-out: a block can be shared by N > 2 sequences.
    mgr = impl.KVCacheManager(32, 4)
    model = KVModel(4)
    parent = start(mgr, model, "p", [9] * 6)
    kids = [mgr.fork(parent, f"k{i}") for i in range(3)]
    tail = mgr.block_pool.blocks[mgr.get_block_ids("p")[1]]
    assert tail.ref_cnt == 4
    for i, req in enumerate([parent, *kids]):
        decode(mgr, model, req, 100 + i)
        model.check(mgr, req)
    assert tail.ref_cnt == 1  # three writers copied; the last one owns the original
    for req in [parent, *kids]:
        mgr.free(req)
    assert mgr.num_free_blocks == 31
    check_manager(mgr, {})


def test_freeing_the_child_restores_the_parent() -> None:
    mgr = impl.KVCacheManager(16, 4)
    model = KVModel(4)
    parent = start(mgr, model, "p", list(range(6)))
    child = mgr.fork(parent, "c")
    mgr.free(child)
    assert all(mgr.block_pool.blocks[i].ref_cnt == 1 for i in mgr.get_block_ids("p"))
    decode(mgr, model, parent, 77)
    assert mgr.take_blocks_to_copy() == []  # sole owner again: writes in place
    check_manager(mgr, {"p": parent})


def test_copy_on_write_counts_toward_capacity() -> None:
    mgr = impl.KVCacheManager(3, 4)  # 2 usable blocks
    model = KVModel(4)
    parent = start(mgr, model, "p", list(range(6)))  # uses both
    child = mgr.fork(parent, "c")
    before = manager_snapshot(mgr, ["p", "c"])
    parent.append_output_token_ids(1)
    assert mgr.allocate_slots(parent, 1) is None  # the copy needs a block; none is free
    assert manager_snapshot(mgr, ["p", "c"]) == before
    check_manager(mgr, {"p": parent, "c": child})


def test_fork_of_unknown_request_or_taken_id_raises() -> None:
    mgr = impl.KVCacheManager(8, 4)
    model = KVModel(4)
    parent = start(mgr, model, "p", [1, 2, 3])
    with pytest.raises(KeyError):
        mgr.fork(impl.Request("ghost", [1]), "x")
    with pytest.raises(ValueError, match="already in use"):
        mgr.fork(parent, "p")
    check_manager(mgr, {"p": parent})
