"""vLLM 0.34 parity: evict_first, the cache probe, hit limits, drained stats, version defaults.

Each test names the vLLM 0.34.0 behaviour it mirrors (``vllm/v1/core/block_pool.py``,
``kv_cache_manager.py``, ``vllm/v1/request.py``, ``vllm/v1/metrics/stats.py``,
``vllm/config/cache.py``).
"""

from __future__ import annotations

import pytest

from block_allocator import (
    VLLM_DEFAULTS,
    BlockPool,
    KVCacheManager,
    PrefixCacheStats,
    Request,
    RetentionPriority,
    defaults_for,
    hash_block_tokens,
)

pytestmark = pytest.mark.extended

H = [hash_block_tokens(None, [i] * 4) for i in range(8)]


def ids(blocks: list) -> list[int]:  # type: ignore[type-arg]
    return [b.block_id for b in blocks]


@pytest.mark.parametrize("free_order", ["classic", "fresh_first"])
def test_evict_first_puts_freed_blocks_at_the_head_in_order(free_order: str) -> None:
    pool = BlockPool(8, free_order=free_order)
    blocks = pool.get_new_blocks(3)
    pool.cache_full_blocks(blocks, H[:3])
    pool.free_blocks(iter(blocks[::-1]), evict_first=True)  # any iterable, not copied
    assert ids(pool.get_free_blocks())[:3] == [3, 2, 1]
    # the next allocation evicts them first, deepest block first
    assert ids(pool.get_new_blocks(1)) == [3]
    assert pool.get_cached_block(H[2]) is None and pool.get_cached_block(H[1]) is not None


def test_without_evict_first_cached_blocks_go_to_the_tail() -> None:
    pool = BlockPool(8, free_order="fresh_first")
    blocks = pool.get_new_blocks(3)
    pool.cache_full_blocks(blocks[:2], H[:2])
    pool.free_blocks(blocks[::-1])
    # vLLM 0.33/0.34: unhashed block 3 to the head, hashed 2, 1 to the tail (LRU)
    assert ids(pool.get_free_blocks()) == [3, 4, 5, 6, 7, 2, 1]


def test_evict_first_with_retention_levels_stays_in_each_level() -> None:
    pool = BlockPool(8)
    blocks = pool.get_new_blocks(3)
    pool.cache_full_blocks(blocks[:1], H[:1], retention_priority=RetentionPriority.HIGH)
    pool.cache_full_blocks(blocks[1:], H[1:3])
    pool.free_blocks(blocks[::-1], evict_first=True)
    assert ids(pool.get_free_blocks()) == [3, 2, 4, 5, 6, 7, 1]  # level 0 head, then HIGH


def test_shared_blocks_keep_their_place_with_evict_first() -> None:
    pool = BlockPool(6)
    blocks = pool.get_new_blocks(2)
    pool.touch(blocks[:1])
    pool.free_blocks(blocks, evict_first=True)
    assert blocks[0].ref_cnt == 1 and ids(pool.get_free_blocks()) == [2, 3, 4, 5]


def _cached_manager() -> tuple[KVCacheManager, Request]:
    mgr = KVCacheManager(16, 4, enable_kv_cache_events=True)
    seed = Request("seed", list(range(13)))
    mgr.allocate_slots(seed, 13)
    mgr.free(seed)
    mgr.take_events()
    return mgr, seed


def test_get_num_cached_tokens_is_a_probe() -> None:
    mgr, _ = _cached_manager()
    probe = Request("p", list(range(13)))
    free_before = [b.block_id for b in mgr.block_pool.get_free_blocks()]
    assert mgr.get_num_cached_tokens(probe) == 12
    assert probe.block_size is None and probe.block_hashes == []  # not even bound
    assert [b.block_id for b in mgr.block_pool.get_free_blocks()] == free_before
    assert mgr.take_events() == [] and mgr.prefix_cache_stats == PrefixCacheStats()
    assert mgr.get_computed_blocks(probe)[1] == 12  # the same answer as the real lookup
    assert mgr.get_num_cached_tokens(Request("q", list(range(12)))) == 8  # last token recomputed


def test_prefix_cache_hit_limit_and_bound() -> None:
    mgr, _ = _cached_manager()
    limited = Request("l", list(range(13)), prefix_cache_hit_limit=6)
    assert limited.get_max_cache_hit_length() == 6
    assert mgr.get_computed_blocks(limited)[1] == 4  # 6 tokens -> one whole block
    assert mgr.get_num_cached_tokens(limited) == 4
    skip = Request("s", list(range(13)), prefix_cache_hit_limit=0)
    assert mgr.get_computed_blocks(skip) == ([], 0)
    assert mgr.get_num_cached_tokens(skip) == 0
    free = Request("f", list(range(13)))
    assert free.get_max_cache_hit_length(9) == 9
    assert mgr.get_computed_blocks(free, max_cache_hit_length=9)[1] == 8


def test_stats_are_drained_on_read_with_reset_and_preempted_counters() -> None:
    mgr, _ = _cached_manager()
    a = Request("a", list(range(13)))
    hits, n = mgr.get_computed_blocks(a)
    mgr.allocate_slots(a, a.num_tokens - n, hits)
    assert mgr.prefix_cache_stats == PrefixCacheStats(requests=1, queries=13, hits=12)
    mgr.free(a)  # preempted (recompute): admitted again, counted apart
    a.num_preemptions += 1
    hits, n = mgr.get_computed_blocks(a)
    mgr.allocate_slots(a, a.num_tokens - n, hits)
    stats = mgr.make_prefix_cache_stats()
    assert (stats.requests, stats.queries, stats.hits) == (1, 13, 12)
    assert (stats.preempted_requests, stats.preempted_queries, stats.preempted_hits) == (1, 13, 12)
    assert not stats.reset
    assert mgr.make_prefix_cache_stats() == PrefixCacheStats()  # drained
    assert not mgr.reset_prefix_cache()  # a is running: refused, no flag
    assert not mgr.prefix_cache_stats.reset
    mgr.free(a)
    assert mgr.reset_prefix_cache()
    assert mgr.make_prefix_cache_stats().reset
    assert not mgr.make_prefix_cache_stats().reset


def test_version_defaults() -> None:
    assert defaults_for("0.34.0").block_size == 64
    assert defaults_for("v0.33.1").block_size == 16
    assert defaults_for() is VLLM_DEFAULTS["0.34"]
    assert defaults_for("0.34").commit == "62d4bc3c7"
    assert {d.free_order for d in VLLM_DEFAULTS.values()} == {"fresh_first"}
    mgr = KVCacheManager(8, defaults_for("0.34").block_size)
    assert mgr.block_size == 64


def test_get_num_common_prefix_blocks_is_gone() -> None:
    # Removed in vLLM 0.34 (deprecated, returning zeros, in 0.33); we never shipped it.
    assert not hasattr(KVCacheManager, "get_num_common_prefix_blocks")
