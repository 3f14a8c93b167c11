# ruff: noqa: E501
"""lab05: the biography of a cached block (Phase 02 lab-05) on the mini-build's manager.

Uses ``KVCacheManager(num_blocks, block_size)`` with ``block_pool``,
``get_computed_blocks(request) -> (blocks, num_cached_tokens)``,
``allocate_slots(request, num_new_tokens, new_computed_blocks=None)`` (None = refused,
nothing changed) and ``free(request)``; a request's block ids come from
``get_block_ids(request_id)`` or ``req_to_blocks``. Requests are the module's
``Request(request_id, token_ids)`` or the kit's own (see ``KitRequest``).
"""

from __future__ import annotations

import random
from types import ModuleType
from typing import Any

from ._adapt import PoolState, block_ids_of, free_ids, make_manager, make_request
from ._runner import CheckFailed, check
from .lab01 import changes, expect, invariants

LAB = "lab05"
BS = 4


def admit(m: ModuleType, mgr: Any, rid: str, tokens: list[int]) -> tuple[Any, int]:
    """Lookup + allocate, as a scheduler admits a request; returns (request, hit tokens)."""
    req = make_request(m, rid, tokens, mgr.block_size if hasattr(mgr, "block_size") else BS)
    hits, num_hit = mgr.get_computed_blocks(req)
    expect(
        num_hit == len(hits) * BS,
        f"get_computed_blocks returned {len(hits)} blocks but {num_hit} tokens",
    )
    got = mgr.allocate_slots(req, req.num_tokens - num_hit, hits or None)
    expect(got is not None, f"allocate_slots refused {rid} in a pool with room")
    req.num_computed_tokens = req.num_tokens
    return req, num_hit


@check(LAB)
def identical_prompts_converge(m: ModuleType) -> None:
    """Two identical prompts share their full blocks (ref_cnt 2); each keeps a private tail."""
    mgr = make_manager(m, 16, BS)
    admit(m, mgr, "a", list(range(10)))
    _, hit = admit(m, mgr, "b", list(range(10)))
    a, b = block_ids_of(mgr, "a"), block_ids_of(mgr, "b")
    expect(
        hit == 8 and a[:2] == b[:2], f"b should reuse a's 2 full blocks: a={a}, b={b}, hit {hit}"
    )
    expect(a[2] != b[2], f"the partial tail block must be private: a={a}, b={b}")
    pool = mgr.block_pool
    expect(
        [pool.blocks[i].ref_cnt for i in a] == [2, 2, 1],
        f"ref_cnt of a's blocks {[pool.blocks[i].ref_cnt for i in a]}, want [2, 2, 1]",
    )
    invariants(pool)


@check(LAB)
def freed_blocks_linger(m: ModuleType) -> None:
    """After free, the blocks are free (usage 0) but still findable by hash."""
    mgr = make_manager(m, 16, BS)
    req, _ = admit(m, mgr, "a", list(range(12)))
    ids = block_ids_of(mgr, "a")
    mgr.free(req)
    pool = mgr.block_pool
    expect(all(i in free_ids(pool) for i in ids), f"blocks {ids} must be back in the free queue")
    expect(abs(pool.get_usage()) < 1e-9, f"usage {pool.get_usage()} after freeing everything")
    again = make_request(m, "a2", list(range(12)), BS)
    _, num_hit = mgr.get_computed_blocks(again)
    expect(num_hit == 8, f"a freed prompt of 12 tokens should hit 8 tokens, got {num_hit}")
    invariants(pool)


@check(LAB)
def free_releases_in_reverse_order(m: ModuleType) -> None:
    """free() releases a request's blocks tail first, so eviction takes tails before prefixes."""
    mgr = make_manager(m, 8, BS)
    req, _ = admit(m, mgr, "a", list(range(12)))
    ids = block_ids_of(mgr, "a")
    pool = mgr.block_pool
    before = PoolState.of(pool)
    mgr.free(req)
    queue = free_ids(pool)
    expect(
        queue[-3:] == ids[::-1],
        f"the queue should end with {ids[::-1]} (tail first), got {queue}\n"
        + changes(before, pool),
    )


@check(LAB)
def eviction_takes_tails_before_shared_prefixes(m: ModuleType) -> None:
    """Under pressure, a freed chain's deepest block is evicted first and its root last."""
    mgr = make_manager(m, 5, BS)
    req, _ = admit(m, mgr, "a", list(range(13)))  # blocks: 3 full + 1 partial = all 4
    ids = block_ids_of(mgr, "a")
    pool = mgr.block_pool
    root = pool.blocks[ids[0]]
    root_hash = root.block_hash
    mgr.free(req)
    pressure = make_request(m, "p", [99] * 3, BS)  # one partial block: never cached
    expect(mgr.allocate_slots(pressure, 3) is not None, "a 1-block request must fit")
    expect(
        root_hash is not None
        and root.block_hash == root_hash
        and pool.get_cached_block(root_hash) is root,
        f"one block of pressure evicted the chain's root (block {ids[0]}) before its tail",
    )


@check(LAB)
def a_newcomer_revives_dead_blocks(m: ModuleType) -> None:
    """A later request with the same prefix takes the freed blocks back out of the queue."""
    mgr = make_manager(m, 16, BS)
    req, _ = admit(m, mgr, "a", list(range(9)))
    ids = block_ids_of(mgr, "a")
    mgr.free(req)
    pool = mgr.block_pool
    before = PoolState.of(pool)
    _, hit = admit(m, mgr, "b", [*range(8), 50, 51])
    got = block_ids_of(mgr, "b")
    expect(
        hit == 8 and got[:2] == ids[:2],
        f"b should revive blocks {ids[:2]}, got {got} with {hit} hit tokens\n"
        + changes(before, pool),
    )
    invariants(pool)


@check(LAB)
def hits_are_capped_at_num_tokens_minus_one(m: ModuleType) -> None:
    """A fully cached prompt still computes its last token: hits <= (num_tokens - 1) // block_size blocks."""
    for n, want in ((8, 4), (9, 8), (4, 0)):
        mgr = make_manager(m, 16, BS)
        admit(m, mgr, "a", list(range(n)))
        req = make_request(m, "b", list(range(n)), BS)
        _, hit = mgr.get_computed_blocks(req)
        expect(
            hit == want,
            f"a cached {n}-token prompt with block_size {BS}: {hit} hit tokens, want {want}",
        )


@check(LAB)
def exactly_sized_pool_counts_free_hits(m: ModuleType) -> None:
    """Hits that sit in the free queue cost a free block: a too-big newcomer is refused, nothing changes."""
    mgr = make_manager(m, 5, BS)  # 4 usable blocks
    a, _ = admit(m, mgr, "a", list(range(9)))  # 3 blocks, 2 cached
    mgr.free(a)
    pool = mgr.block_pool
    req = make_request(m, "b", list(range(8)) + [70] * 9, BS)  # 2 hit + 3 new = 5 > 4
    hits, num_hit = mgr.get_computed_blocks(req)
    before = PoolState.of(pool)
    got = mgr.allocate_slots(req, req.num_tokens - num_hit, hits or None)
    expect(got is None, "allocate_slots must return None: 2 hit blocks + 3 new blocks > 4 free")
    expect(
        PoolState.of(pool) == before,
        "a refused allocate_slots changed the pool\n" + changes(before, pool),
    )


@check(LAB)
def decode_allocates_at_block_boundaries(m: ModuleType) -> None:
    """Decoding one token at a time takes a new block only when the last one is full."""
    mgr = make_manager(m, 16, BS)
    req, _ = admit(m, mgr, "a", list(range(6)))
    sizes = []
    for t in range(6):
        req.append_output_token_ids(100 + t)
        expect(mgr.allocate_slots(req, 1) is not None, "a decode step was refused with room left")
        req.num_computed_tokens += 1
        sizes.append(len(block_ids_of(mgr, "a")))
    expect(
        sizes == [2, 2, 3, 3, 3, 3],
        f"blocks held after each decode step {sizes}, want [2, 2, 3, 3, 3, 3]",
    )


@check(LAB)
def random_admissions_keep_ref_counts_true(m: ModuleType) -> None:
    """Seeded admissions, decodes and frees: ref_cnt equals the number of tables holding a block."""
    rng = random.Random(7)
    mgr = make_manager(m, 24, BS)
    pool = mgr.block_pool
    running: dict[str, Any] = {}
    for step in range(120):
        before = PoolState.of(pool)
        op = rng.choice(("admit", "admit", "decode", "free"))
        if op == "admit":
            rid = f"r{step}"
            req = make_request(m, rid, [rng.choice((1, 2))] * rng.randint(1, 14), BS)
            hits, num_hit = mgr.get_computed_blocks(req)
            if mgr.allocate_slots(req, req.num_tokens - num_hit, hits or None) is not None:
                req.num_computed_tokens = req.num_tokens
                running[rid] = req
            else:
                expect(
                    PoolState.of(pool) == before,
                    f"step {step}: refused admission changed the pool\n" + changes(before, pool),
                )
        elif op == "decode" and running:
            req = running[rng.choice(sorted(running))]
            req.append_output_token_ids(rng.choice((1, 2)))
            if mgr.allocate_slots(req, 1) is not None:
                req.num_computed_tokens += 1
        elif op == "free" and running:
            mgr.free(running.pop(rng.choice(sorted(running))))
        holders: dict[int, int] = {}
        for rid in running:
            for i in block_ids_of(mgr, rid):
                holders[i] = holders.get(i, 0) + 1
        for b in pool.blocks[1:]:
            if b.ref_cnt != holders.get(b.block_id, 0):
                raise CheckFailed(
                    f"step {step} ({op}): block {b.block_id} has ref_cnt {b.ref_cnt} but "
                    f"{holders.get(b.block_id, 0)} block tables hold it\n" + changes(before, pool)
                )
        try:
            invariants(pool)
        except CheckFailed as exc:
            raise CheckFailed(f"step {step} ({op}): {exc}\n" + changes(before, pool)) from None
