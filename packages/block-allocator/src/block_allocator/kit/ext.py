"""ext: behaviour beyond the mini-build, each check skipped when its API is absent (never scored).

Copy-on-write forks (the mini-build's stretch goal; Phase 02 exercises, ex. 7), the pool's
cached-block count, KV-cache events, and vLLM 0.34's ``free_blocks(evict_first=True)``
and ``get_num_cached_tokens``.
"""

from __future__ import annotations

import inspect
from types import ModuleType

from ._adapt import PoolState, block_ids_of, free_ids, make_manager, make_request
from ._runner import NotImplementedByModule, check
from .lab01 import changes, expect, invariants
from .lab05 import BS, admit

LAB = "ext"


@check(LAB, requires=("BlockPool.fork_block",))
def fork_block_copies_only_shared_blocks(m: ModuleType) -> None:
    """fork_block returns the block itself when private, a fresh copy when shared."""
    pool = m.BlockPool(6)
    (b,) = pool.get_new_blocks(1)
    expect(pool.fork_block(b) is b, "a private, uncached block needs no copy")
    pool.touch([b])
    before = PoolState.of(pool)
    new = pool.fork_block(b)
    expect(
        new is not b and new.ref_cnt == 1 and b.ref_cnt == 1,
        "forking a shared block must give a new block and drop one reference\n"
        + changes(before, pool),
    )
    invariants(pool)


@check(LAB, requires=("KVCacheManager.fork", "KVCacheManager.take_blocks_to_copy"))
def manager_fork_copies_on_first_write(m: ModuleType) -> None:
    """A forked request shares every block; the first write into the shared tail copies it."""
    mgr = make_manager(m, 16, BS)
    parent, _ = admit(m, mgr, "p", list(range(6)))
    child = mgr.fork(parent, "c")
    expect(
        block_ids_of(mgr, "c") == block_ids_of(mgr, "p"), "the child must share the parent's table"
    )
    child.append_output_token_ids(42)
    expect(mgr.allocate_slots(child, 1) is not None, "the child's write was refused")
    pairs = mgr.take_blocks_to_copy()
    p_ids, c_ids = block_ids_of(mgr, "p"), block_ids_of(mgr, "c")
    expect(p_ids[0] == c_ids[0] and p_ids[1] != c_ids[1], f"after the write p={p_ids}, c={c_ids}")
    expect(pairs == [(p_ids[1], c_ids[1])], f"copies {pairs}, want [({p_ids[1]}, {c_ids[1]})]")


@check(LAB, requires=("BlockPool.num_cached_blocks",))
def num_cached_blocks_counts_the_index(m: ModuleType) -> None:
    """num_cached_blocks counts indexed blocks, free or in use, and drops on eviction."""
    pool = m.BlockPool(3)
    blocks = pool.get_new_blocks(2)
    pool.cache_full_blocks(blocks, [m.hash_block_tokens(None, [i]) for i in range(2)])
    pool.free_blocks(blocks)
    expect(pool.num_cached_blocks == 2, f"num_cached_blocks {pool.num_cached_blocks}, want 2")
    pool.get_new_blocks(1)
    expect(pool.num_cached_blocks == 1, f"num_cached_blocks {pool.num_cached_blocks}, want 1")


@check(LAB, requires=("BlockPool.take_events", "BlockStored", "BlockRemoved"))
def events_report_stores_and_evictions(m: ModuleType) -> None:
    """With events on, caching emits BlockStored and reuse of a cached block BlockRemoved."""
    pool = m.BlockPool(3, enable_kv_cache_events=True)
    blocks = pool.get_new_blocks(2)
    h = m.hash_block_tokens(None, [5])
    pool.cache_full_blocks(blocks[:1], [h])
    pool.free_blocks(blocks)
    pool.get_new_blocks(2)
    kinds = [type(e).__name__ for e in pool.take_events()]
    expect(
        kinds == ["BlockStored", "BlockRemoved"], f"events {kinds}, want BlockStored, BlockRemoved"
    )


@check(LAB, requires=("BlockPool.free_blocks",))
def evict_first_puts_blocks_at_the_head(m: ModuleType) -> None:
    """vLLM 0.34: free_blocks(blocks, evict_first=True) puts freed blocks at the head, in order."""
    pool = m.BlockPool(6)
    blocks = pool.get_new_blocks(2)
    pool.cache_full_blocks(blocks, [m.hash_block_tokens(None, [i]) for i in range(2)])
    if "evict_first" not in inspect.signature(pool.free_blocks).parameters:
        raise NotImplementedByModule("BlockPool.free_blocks(..., evict_first=)")
    pool.free_blocks(blocks[::-1], evict_first=True)
    expect(free_ids(pool)[:2] == [2, 1], f"queue {free_ids(pool)}, want [2, 1, ...]")


@check(LAB, requires=("KVCacheManager.get_num_cached_tokens",))
def get_num_cached_tokens_has_no_side_effects(m: ModuleType) -> None:
    """vLLM 0.34: get_num_cached_tokens answers like get_computed_blocks and changes nothing."""
    mgr = make_manager(m, 16, BS)
    req, _ = admit(m, mgr, "a", list(range(9)))
    mgr.free(req)
    before = PoolState.of(mgr.block_pool)
    n = mgr.get_num_cached_tokens(make_request(m, "b", list(range(9)), BS))
    expect(n == 8, f"get_num_cached_tokens returned {n}, want 8")
    expect(PoolState.of(mgr.block_pool) == before, changes(before, mgr.block_pool))
