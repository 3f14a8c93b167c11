# ruff: noqa: E501
"""lab01: the Phase 02 mini-build's core (block, free queue, pool, chained hash), lab-01's I1-I4.

Every check uses only the mini-build's API: ``KVCacheBlock(block_id)``,
``FreeKVCacheBlockQueue(blocks)`` with ``popleft``/``remove``/``append``/
``get_all_free_blocks``/``num_free_blocks``, ``BlockPool(num_blocks)`` with ``blocks``,
``null_block``, ``get_new_blocks``, ``touch``, ``free_blocks``,
``cache_full_blocks(blocks, hashes)``, ``get_cached_block(hash)``,
``get_num_free_blocks``, ``get_usage``, and ``hash_block_tokens(parent, token_ids)``.
"""

from __future__ import annotations

import random
from types import ModuleType
from typing import Any

from ._adapt import PoolState, diff_states, free_ids, next_of, prev_of
from ._runner import CheckFailed, check

LAB = "lab01"


def expect(cond: bool, message: str) -> None:
    if not cond:
        raise CheckFailed(message)


def changes(before: PoolState, pool: Any) -> str:
    lines = diff_states(before, PoolState.of(pool))
    return "\n".join(["what changed:", *lines]) if lines else "nothing changed"


def invariants(pool: Any) -> None:
    """I1-I3 plus 'the queue holds exactly the free non-null blocks' and the counter."""
    blocks = pool.blocks
    null = pool.null_block
    expect(blocks[0] is null and null.is_null, "I2: pool.blocks[0] must be the null block")
    queue = free_ids(pool, len(blocks) + 1)
    expect(len(queue) <= len(blocks), "I3: the free queue has a cycle")
    expect(len(queue) == len(set(queue)), f"I3: a block is twice in the free queue: {queue}")
    expect(0 not in queue, "I2: the null block is in the free queue")
    expect(null.block_hash is None, "I2: the null block is cached")
    for b in blocks[1:]:
        expect(b.ref_cnt >= 0, f"I1: block {b.block_id} has ref_cnt {b.ref_cnt}")
        linked = prev_of(b) is not None and next_of(b) is not None
        unlinked = prev_of(b) is None and next_of(b) is None
        if b.block_id in queue:
            expect(
                b.ref_cnt == 0, f"block {b.block_id} is in the free queue with ref_cnt {b.ref_cnt}"
            )
            expect(linked, f"I3: free block {b.block_id} is not linked on both sides")
        else:
            expect(b.ref_cnt > 0, f"block {b.block_id} has ref_cnt 0 but is not in the free queue")
            expect(unlinked, f"I3: block {b.block_id} is out of the queue but keeps its links")
    expect(
        pool.get_num_free_blocks() == len(queue),
        f"num free {pool.get_num_free_blocks()} != {len(queue)} blocks in the queue",
    )
    for b in blocks:
        if b.block_hash is not None:
            # Duplicates are legal (vLLM keeps several blocks per hash): the index may name
            # another block, but never one that no longer holds the hash.
            got = pool.get_cached_block(b.block_hash)
            expect(
                got is None or got.block_hash == b.block_hash,
                f"get_cached_block returns block {getattr(got, 'block_id', got)}, which no "
                "longer holds the hash (a stale index entry)",
            )


@check(LAB)
def block_fields(m: ModuleType) -> None:
    """A new KVCacheBlock is free, unhashed, unlinked; reset_hash() forgets the hash."""
    b = m.KVCacheBlock(5)
    expect(
        b.block_id == 5 and b.ref_cnt == 0 and b.block_hash is None,
        f"KVCacheBlock(5) starts as {b!r}",
    )
    expect(not b.is_null and prev_of(b) is None and next_of(b) is None, "links must start as None")
    b.block_hash = m.hash_block_tokens(None, [1, 2])
    b.reset_hash()
    expect(b.block_hash is None, "reset_hash() must set block_hash back to None")


@check(LAB)
def queue_popleft_and_append(m: ModuleType) -> None:
    """popleft takes the head, append puts a block at the tail, num_free_blocks follows."""
    blocks = [m.KVCacheBlock(i) for i in range(4)]
    q = m.FreeKVCacheBlockQueue(blocks)
    expect(q.num_free_blocks == 4, f"num_free_blocks is {q.num_free_blocks}, want 4")
    first = q.popleft()
    expect(first is blocks[0], f"popleft returned block {first.block_id}, want block 0 (the head)")
    expect(prev_of(first) is None and next_of(first) is None, "a popped block must be unlinked")
    q.append(first)
    order = [b.block_id for b in q.get_all_free_blocks()]
    expect(order == [1, 2, 3, 0], f"after popleft + append the queue is {order}, want [1, 2, 3, 0]")
    expect(q.num_free_blocks == 4, f"num_free_blocks is {q.num_free_blocks}, want 4")


@check(LAB)
def queue_o1_middle_removal(m: ModuleType) -> None:
    """remove() unlinks a block from the middle and keeps the rest in order (the reason for the list)."""
    blocks = [m.KVCacheBlock(i) for i in range(5)]
    q = m.FreeKVCacheBlockQueue(blocks)
    q.remove(blocks[2])
    order = [b.block_id for b in q.get_all_free_blocks()]
    expect(order == [0, 1, 3, 4], f"after remove(block 2) the queue is {order}, want [0, 1, 3, 4]")
    expect(
        prev_of(blocks[2]) is None and next_of(blocks[2]) is None,
        "block 2 keeps its links after remove()",
    )
    expect(q.num_free_blocks == 4, f"num_free_blocks is {q.num_free_blocks}, want 4")
    q.remove(blocks[0])
    q.remove(blocks[4])
    order = [b.block_id for b in q.get_all_free_blocks()]
    expect(order == [1, 3], f"after removing the ends the queue is {order}, want [1, 3]")


@check(LAB)
def pool_reserves_the_null_block(m: ModuleType) -> None:
    """Block 0 is the null block: never handed out; free = num_blocks - 1; usage 0."""
    pool = m.BlockPool(8)
    expect(pool.null_block is pool.blocks[0] and pool.null_block.is_null, "block 0 must be null")
    expect(pool.get_num_free_blocks() == 7, f"{pool.get_num_free_blocks()} free, want 7")
    got = [b.block_id for b in pool.get_new_blocks(7)]
    expect(0 not in got, f"get_new_blocks handed out the null block: {got}")
    expect(got == [1, 2, 3, 4, 5, 6, 7], f"a fresh pool hands out {got}, want 1..7 in order")
    expect(abs(pool.get_usage() - 1.0) < 1e-9, f"usage {pool.get_usage()} with every block in use")


@check(LAB)
def get_new_blocks_takes_references(m: ModuleType) -> None:
    """get_new_blocks sets ref_cnt to 1 and takes the blocks out of the free queue."""
    pool = m.BlockPool(6)
    before = PoolState.of(pool)
    got = pool.get_new_blocks(2)
    for b in got:
        expect(b.ref_cnt == 1 and b.block_id not in free_ids(pool), changes(before, pool))
    invariants(pool)


@check(LAB)
def free_blocks_returns_them(m: ModuleType) -> None:
    """free_blocks drops one reference; a block at 0 goes back into the free queue."""
    pool = m.BlockPool(6)
    a, b = pool.get_new_blocks(2)
    pool.touch([a])
    before = PoolState.of(pool)
    pool.free_blocks([a, b])
    expect(
        a.ref_cnt == 1 and a.block_id not in free_ids(pool),
        "a shared block (ref_cnt 2) freed once must stay in use\n" + changes(before, pool),
    )
    expect(
        b.ref_cnt == 0 and b.block_id in free_ids(pool),
        "a block at ref_cnt 0 must be back in the free queue\n" + changes(before, pool),
    )
    invariants(pool)


@check(LAB)
def touch_revives_from_the_middle(m: ModuleType) -> None:
    """touch() on a free cached block unlinks it from the middle of the queue (a prefix hit)."""
    pool = m.BlockPool(8)
    blocks = pool.get_new_blocks(3)
    hashes = [m.hash_block_tokens(None, [i, i]) for i in range(3)]
    pool.cache_full_blocks(blocks, hashes)
    pool.free_blocks(blocks)
    target = pool.get_cached_block(hashes[1])
    expect(target is blocks[1], "get_cached_block must find a freed cached block (lazy eviction)")
    queue = free_ids(pool)
    before = PoolState.of(pool)
    pool.touch([target])
    want = [i for i in queue if i != target.block_id]
    expect(
        free_ids(pool) == want and target.ref_cnt == 1,
        f"touch(block {target.block_id}) should leave {want} in the queue\n"
        + changes(before, pool),
    )
    invariants(pool)


@check(LAB)
def lazy_eviction(m: ModuleType) -> None:
    """A freed cached block keeps its hash until get_new_blocks reuses it, then loses it."""
    pool = m.BlockPool(3)
    blocks = pool.get_new_blocks(2)
    h = m.hash_block_tokens(None, [7, 7])
    pool.cache_full_blocks(blocks[:1], [h])
    pool.free_blocks(blocks)
    expect(pool.get_cached_block(h) is blocks[0], "a freed cached block must stay findable")
    before = PoolState.of(pool)
    pool.get_new_blocks(2)  # reuses both: the cached one is evicted
    expect(
        blocks[0].block_hash is None and pool.get_cached_block(h) is None,
        "reusing a cached block must evict it (reset its hash, drop it from the index)\n"
        + changes(before, pool),
    )
    invariants(pool)


@check(LAB)
def refused_allocation_changes_nothing(m: ModuleType) -> None:
    """get_new_blocks(more than free) raises and leaves the pool exactly as it was."""
    pool = m.BlockPool(5)
    pool.get_new_blocks(2)
    before = PoolState.of(pool)
    try:
        pool.get_new_blocks(3)
    except Exception:
        pass
    else:
        raise CheckFailed("get_new_blocks(3) with 2 free blocks must raise")
    expect(
        PoolState.of(pool) == before,
        "a refused get_new_blocks changed the pool\n" + changes(before, pool),
    )


@check(LAB)
def hashes_are_chained(m: ModuleType) -> None:
    """Same tokens under another parent hash differently; the same inputs agree."""
    h = m.hash_block_tokens
    root = h(None, [1, 2, 3])
    expect(root == h(None, [1, 2, 3]), "hash_block_tokens must be deterministic")
    expect(h(root, [4, 5, 6]) != h(None, [4, 5, 6]), "the parent hash must change the result")
    expect(h(root, [4, 5, 6]) != h(h(None, [9, 9, 9]), [4, 5, 6]), "different parents must differ")
    expect(h(None, [1, 2, 3]) != h(None, [3, 2, 1]), "token order must matter")


@check(LAB)
def usage_counts_cached_free_blocks_as_free(m: ModuleType) -> None:
    """get_usage() = 1 - free / (num_blocks - 1); cached free blocks count as free."""
    pool = m.BlockPool(5)
    blocks = pool.get_new_blocks(2)
    expect(abs(pool.get_usage() - 0.5) < 1e-9, f"usage {pool.get_usage()} with 2 of 4 in use")
    pool.cache_full_blocks(blocks[:1], [m.hash_block_tokens(None, [1])])
    pool.free_blocks(blocks)
    expect(abs(pool.get_usage()) < 1e-9, f"usage {pool.get_usage()} with every block free")


@check(LAB)
def random_walk_keeps_the_invariants(m: ModuleType) -> None:
    """300 seeded random get/touch/free/cache steps keep I1-I3 and the queue/counter/index rules."""
    rng = random.Random(20240702)
    pool = m.BlockPool(12)
    held: list[Any] = []
    next_hash = 0
    for step in range(300):
        before = PoolState.of(pool)
        op = rng.choice(("get", "free", "touch", "cache"))
        try:
            if op == "get" and pool.get_num_free_blocks():
                held += pool.get_new_blocks(rng.randint(1, pool.get_num_free_blocks()))
            elif op == "free" and held:
                rng.shuffle(held)
                k = rng.randint(1, len(held))
                pool.free_blocks(held[:k][::-1])
                held = held[k:]
            elif op == "touch":
                cached = [b for b in pool.blocks if b.block_hash is not None]
                if cached:
                    b = rng.choice(cached)
                    pool.touch([b])
                    held.append(b)
            elif op == "cache":
                new = [b for b in held if b.block_hash is None]
                if new:
                    b = rng.choice(new)
                    pool.cache_full_blocks([b], [m.hash_block_tokens(None, [next_hash])])
                    next_hash += 1
            invariants(pool)
        except CheckFailed as exc:
            raise CheckFailed(f"step {step} ({op}): {exc}\n" + changes(before, pool)) from None
