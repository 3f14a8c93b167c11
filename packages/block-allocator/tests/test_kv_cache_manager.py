"""KVCacheManager: allocate_slots, free, get_computed_blocks, block tables, slot_mapping.

Mirrors ``vllm/v1/core/kv_cache_manager.py`` (the Phase 02 mini-build, step 5; the
'PagedAttention from scratch in 300 lines' capstone, steps 02-03).
"""

from __future__ import annotations

import random

import pytest
from _allocator_impl import impl
from _invariants import check_manager, manager_snapshot
from _kv_model import KVModel

pytestmark = pytest.mark.lab05


def admit(mgr, req, model: KVModel | None = None):
    """Prefix lookup + allocation + one prefill step, as a scheduler does it."""
    hits, num_hit = mgr.get_computed_blocks(req)
    new = mgr.allocate_slots(req, req.num_tokens - num_hit, hits)
    if new is None:
        return None
    req.num_computed_tokens = num_hit
    if model is not None:
        model.step(mgr, req, req.num_tokens - num_hit)
    else:
        req.num_computed_tokens = req.num_tokens
    return hits, new


def decode(mgr, req, token: int, model: KVModel | None = None):
    req.append_output_token_ids(token)
    new = mgr.allocate_slots(req, 1)
    if new is not None:
        if model is not None:
            model.step(mgr, req, 1)
        else:
            req.num_computed_tokens += 1
    return new


def test_allocate_on_demand_one_block_per_boundary() -> None:
    # capstone, step 02: allocate a new block only when a sequence crosses a block boundary
    mgr = impl.KVCacheManager(32, 4)
    req = impl.Request("r", [1, 2, 3])
    admit(mgr, req)
    assert len(mgr.get_block_ids("r")) == 1
    grew = [len(decode(mgr, req, 9)) for _ in range(9)]
    assert grew == [0, 1, 0, 0, 0, 1, 0, 0, 0]  # tokens 4, 8 start blocks 2 and 3
    assert len(mgr.get_block_ids("r")) == 3
    check_manager(mgr, {"r": req})


def test_blocks_are_cached_as_they_fill() -> None:
    mgr = impl.KVCacheManager(16, 4)
    req = impl.Request("r", [1, 2, 3, 4, 5, 6])
    admit(mgr, req)
    b0, b1 = (mgr.block_pool.blocks[i] for i in mgr.get_block_ids("r"))
    assert b0.block_hash == req.block_hashes[0] and b1.block_hash is None
    decode(mgr, req, 7)
    assert b1.block_hash is None
    decode(mgr, req, 8)
    assert b1.block_hash == req.block_hashes[1] and len(req.block_hashes) == 2
    check_manager(mgr, {"r": req})


def test_allocate_failure_has_no_side_effect() -> None:
    mgr = impl.KVCacheManager(4, 4)
    a = impl.Request("a", list(range(8)))
    admit(mgr, a)
    b = impl.Request("b", [*range(8), 50, 51, 52, 53, 54])
    before = manager_snapshot(mgr, ["a"])
    hits, num_hit = mgr.get_computed_blocks(b)
    assert num_hit == 8
    assert mgr.allocate_slots(b, b.num_tokens - num_hit, hits) is None  # needs 2, has 1
    assert manager_snapshot(mgr, ["a"]) == before
    assert b.num_computed_tokens == 0
    check_manager(mgr, {"a": a})


def test_free_releases_in_reverse_order() -> None:
    mgr = impl.KVCacheManager(8, 4)
    req = impl.Request("r", list(range(12)))
    admit(mgr, req)
    ids = mgr.get_block_ids("r")
    mgr.free(req)
    from _allocator_impl import free_block_ids

    assert free_block_ids(mgr.block_pool)[-3:] == ids[::-1]
    mgr.free(req)  # a request without blocks: nothing to do
    check_manager(mgr, {})


def test_slot_mapping_and_block_table_translate_positions() -> None:
    mgr = impl.KVCacheManager(16, 4)
    filler = impl.Request("f", list(range(100, 106)))
    admit(mgr, filler)  # so r's blocks are not 1, 2, 3
    req = impl.Request("r", list(range(10)))
    mgr.get_computed_blocks(req)
    mgr.allocate_slots(req, 10)
    ids = mgr.get_block_ids("r")
    slots = mgr.slot_mapping(req, 10)
    assert slots == [ids[p // 4] * 4 + p % 4 for p in range(10)]
    table = mgr.get_block_table("r")
    assert table.block_ids == ids and table.translate(9) == (ids[2], 1)
    assert table.slot(5) == ids[1] * 4 + 1
    req.num_computed_tokens = 10
    req.append_output_token_ids(7)
    mgr.allocate_slots(req, 1)
    assert mgr.slot_mapping(req, 1) == [ids[2] * 4 + 2]


def test_append_1000_tokens_and_read_back() -> None:
    # capstone, step 03 checkpoint: append 1000 tokens and read any of them back
    mgr = impl.KVCacheManager(300, 4)
    model = KVModel(4)
    rng = random.Random(0)
    req = impl.Request("r", [rng.randrange(50_000)])
    admit(mgr, req, model)
    for _ in range(999):
        assert decode(mgr, req, rng.randrange(50_000), model) is not None
    model.check(mgr, req)
    table = mgr.get_block_table("r")
    for pos in rng.sample(range(1000), 50):
        block_id, off = table.translate(pos)
        assert model.slots[block_id * 4 + off] == req.all_token_ids[pos]


def test_100_sequences_share_1000_blocks_without_running_out() -> None:
    # capstone, step 02 checkpoint
    rng = random.Random(1)
    mgr = impl.KVCacheManager(1001, 16, enable_caching=False)
    running = {}
    for i in range(100):
        req = impl.Request(f"s{i}", [rng.randrange(1000) for _ in range(rng.randint(20, 80))])
        assert admit(mgr, req) is not None
        running[req.request_id] = (req, rng.randint(1, 60))
    while running:
        for rid, (req, left) in list(running.items()):
            if left == 0:
                mgr.free(req)
                del running[rid]
                continue
            assert decode(mgr, req, 1) is not None
            running[rid] = (req, left - 1)
    assert mgr.num_free_blocks == 1000 and mgr.usage == 0.0


@pytest.mark.extended
def test_prefix_cache_stats_count_tokens() -> None:
    mgr = impl.KVCacheManager(16, 4)
    a = impl.Request("a", list(range(10)))
    admit(mgr, a)
    b = impl.Request("b", list(range(10)))
    admit(mgr, b)
    stats = mgr.prefix_cache_stats
    assert (stats.requests, stats.queries, stats.hits) == (2, 20, 8)
    assert stats.hit_rate == pytest.approx(0.4)


def test_preempted_request_hits_its_own_generated_blocks() -> None:
    mgr = impl.KVCacheManager(16, 4)
    req = impl.Request("r", [1, 2, 3])
    admit(mgr, req)
    for t in range(10, 16):
        decode(mgr, req, t)
    mgr.free(req)  # preemption by recompute
    req.num_computed_tokens = 0
    hits, num_hit = mgr.get_computed_blocks(req)
    assert num_hit == 8  # 9 tokens: two full blocks, one of them generated
    assert hits[1].block_hash == req.block_hashes[1]


def test_caching_disabled_never_hits() -> None:
    mgr = impl.KVCacheManager(16, 4, enable_caching=False)
    admit(mgr, impl.Request("a", list(range(10))))
    assert mgr.get_computed_blocks(impl.Request("b", list(range(10)))) == ([], 0)


@pytest.mark.extended
def test_extra_keys_keep_tenants_apart() -> None:
    mgr = impl.KVCacheManager(32, 4)
    admit(mgr, impl.Request("a", list(range(10)), cache_salt="tenant-a"))
    assert mgr.get_computed_blocks(impl.Request("b", list(range(10)), cache_salt="b"))[1] == 0
    assert mgr.get_computed_blocks(impl.Request("c", list(range(10)), lora_id=1))[1] == 0
    same_tenant = impl.Request("d", list(range(10)), cache_salt="tenant-a")
    assert mgr.get_computed_blocks(same_tenant)[1] == 8


@pytest.mark.extended
def test_manager_events_carry_tokens_and_parents() -> None:
    mgr = impl.KVCacheManager(16, 4, enable_kv_cache_events=True)
    req = impl.Request("r", list(range(9)), lora_id=3)
    admit(mgr, req)
    (ev,) = mgr.take_events()
    assert ev.block_hashes == tuple(req.block_hashes) and ev.parent_block_hash is None
    assert ev.token_ids == tuple(range(8)) and ev.lora_id == 3 and ev.block_size == 4
    for t in (9, 10, 11):
        decode(mgr, req, t)
    (ev,) = mgr.take_events()
    assert ev.block_hashes == (req.block_hashes[2],) and ev.parent_block_hash == req.block_hashes[1]


@pytest.mark.extended
@pytest.mark.parametrize(("priority", "expected_hit"), [(0, 0), (1, 8), (2, 8)])
def test_pinned_system_prompt_outlives_ordinary_prefixes(priority: int, expected_hit: int) -> None:
    mgr = impl.KVCacheManager(9, 4)
    system = list(range(900, 908))  # two blocks
    pinned = impl.Request(
        "sys",
        [*system, 1, 2, 3, 4, 5],
        retention_priority=priority,
        retention_num_tokens=len(system),
    )
    admit(mgr, pinned)
    mgr.free(pinned)
    for i in range(3):  # later traffic churns through every unpinned block, twice over
        other = impl.Request(f"o{i}", [i * 100 + t for t in range(17)])
        assert admit(mgr, other) is not None
        mgr.free(other)
    newcomer = impl.Request("n", [*system, 7, 7, 7])
    _, num_hit = mgr.get_computed_blocks(newcomer)
    assert num_hit == expected_hit  # plain LRU loses the system prompt; priority keeps it
    again = impl.Request("p", [*system, 1, 2, 3, 4, 5])
    assert mgr.get_computed_blocks(again)[1] == expected_hit  # the continuation is gone


@pytest.mark.extended
def test_reset_prefix_cache_through_the_manager() -> None:
    mgr = impl.KVCacheManager(16, 4)
    req = impl.Request("r", list(range(9)))
    admit(mgr, req)
    assert mgr.reset_prefix_cache() is False
    mgr.free(req)
    assert mgr.reset_prefix_cache() is True
    assert mgr.get_computed_blocks(impl.Request("s", list(range(9))))[1] == 0


@pytest.mark.extended
def test_free_twice_is_a_no_op_at_the_manager_and_an_error_at_the_pool() -> None:
    mgr = impl.KVCacheManager(num_blocks=8, block_size=4)
    req = impl.Request("r", list(range(10)))
    admit(mgr, req)
    blocks = [mgr.block_pool.blocks[i] for i in mgr.get_block_ids("r")]
    mgr.free(req)
    before = manager_snapshot(mgr, [])
    mgr.free(req)  # vLLM semantics: a request without blocks frees nothing
    assert manager_snapshot(mgr, []) == before
    with pytest.raises(impl.UnknownRequestError):
        mgr.get_block_ids("r")
    with pytest.raises(impl.DoubleFreeError):
        mgr.block_pool.free_blocks(blocks[:1])
    assert manager_snapshot(mgr, []) == before
    check_manager(mgr, {})
