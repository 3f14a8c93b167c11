"""The CPU offload tier: stores on GPU eviction, LRU order, loads on prefix hits, events, stats.

Example tests pin the life of one block (evicted to CPU, loaded back, counted per tier);
a hypothesis state machine checks the tier against a naive LRU list and the pool's
invariants after every step.
"""

from __future__ import annotations

import pytest
from _hybrid_checks import check_pool_tables, snapshot
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from block_allocator import BlockRemoved, BlockStored, KVCacheManager, Request
from block_allocator.offload import (
    MEDIUM_CPU,
    MEDIUM_GPU,
    CacheHit,
    CPUOffloadTier,
    OffloadingKVCacheManager,
    TierBlockLoaded,
    TierBlockRemoved,
    TierBlockStored,
)

pytestmark = pytest.mark.extended

BS = 4


def _tiered(num_blocks: int, cpu_blocks: int) -> OffloadingKVCacheManager:
    mgr = KVCacheManager(num_blocks, BS, enable_kv_cache_events=True)
    return OffloadingKVCacheManager(mgr, CPUOffloadTier(cpu_blocks))


def _serve(kv: OffloadingKVCacheManager, req: Request) -> int:
    blocks, num_hit = kv.get_computed_blocks(req)
    assert kv.allocate_slots(req, req.num_tokens - num_hit, blocks) is not None
    req.num_computed_tokens = req.num_tokens
    return num_hit


def test_evicted_blocks_are_stored_and_loaded_back() -> None:
    kv = _tiered(num_blocks=6, cpu_blocks=8)  # 5 GPU blocks: one 17-token request fills them
    a = Request("a", list(range(17)))
    assert _serve(kv, a) == 0
    kv.free(a)
    kv.take_events()
    b = Request("b", list(range(100, 117)))
    assert _serve(kv, b) == 0  # evicts a's 4 cached blocks from the GPU
    kv.free(b)
    events = kv.take_events()
    removed = [e.block_hashes[0] for e in events if isinstance(e, BlockRemoved)]
    stored = [h for e in events if isinstance(e, TierBlockStored) for h in e.block_hashes]
    assert removed == stored and len(stored) == 4
    assert all(e.medium == MEDIUM_CPU for e in events if isinstance(e, TierBlockStored))
    assert list(kv.cpu_tier) == a.block_hashes[::-1]  # freed tail first, evicted tail first
    c = Request("c", list(range(17)))
    assert _serve(kv, c) == 16  # the whole prefix comes back from the CPU
    events = kv.take_events()
    loads = [e for e in events if isinstance(e, TierBlockLoaded)]
    assert loads == [TierBlockLoaded("c", tuple(a.block_hashes), MEDIUM_CPU)]
    assert CacheHit("c", tuple(a.block_hashes), MEDIUM_CPU) in events
    gpu_ids = kv.get_block_ids("c")
    assert [kv.block_pool.blocks[i].block_hash for i in gpu_ids[:4]] == a.block_hashes
    assert any(isinstance(e, BlockStored) for e in events)  # cached on the GPU again
    stats = kv.offload_stats
    assert (stats.requests, stats.queries, stats.gpu_hits, stats.cpu_hits) == (3, 51, 0, 16)
    assert (stats.stores, stats.loads, stats.cpu_capacity) == (8, 4, 8)
    assert stats.cpu_hit_rate == pytest.approx(16 / 51) and stats.gpu_hit_rate == 0.0


def test_gpu_hit_then_cpu_continuation() -> None:
    kv = _tiered(num_blocks=6, cpu_blocks=8)
    a = Request("a", list(range(17)))
    _serve(kv, a)
    kv.free(a)
    # b shares a's first 8 tokens: its own 9 new tokens evict a's two tail blocks only.
    b = Request("b", [*range(8), *range(200, 209)])
    assert _serve(kv, b) == 8
    kv.free(b)
    assert set(kv.cpu_tier) == set(a.block_hashes[2:])
    c = Request("c", list(range(17)))
    blocks, num_hit = kv.get_computed_blocks(c)
    assert len(blocks) == 2 and num_hit == 16  # 2 blocks on the GPU, 2 loaded from CPU
    assert kv.allocate_slots(c, 1, blocks) is not None
    events = kv.take_events()
    hits = {e.medium: e.block_hashes for e in events if isinstance(e, CacheHit)}
    assert hits == {MEDIUM_GPU: tuple(a.block_hashes[:2]), MEDIUM_CPU: tuple(a.block_hashes[2:])}


def test_cpu_tier_is_lru_and_bounded() -> None:
    tier = CPUOffloadTier(3)
    keys = [bytes([i]) * 32 for i in range(5)]
    assert tier.store(keys[:3]) == (keys[:3], [])
    tier.touch([keys[0]])
    assert tier.store([keys[3]]) == ([keys[3]], [keys[1]])
    assert list(tier) == [keys[2], keys[0], keys[3]]
    assert tier.store([keys[2]]) == ([], [])  # already there: refreshed, not stored again
    assert list(tier) == [keys[0], keys[3], keys[2]]
    assert tier.longest_prefix([keys[0], keys[3], keys[4], keys[2]]) == [keys[0], keys[3]]
    assert list(tier) == [keys[0], keys[3], keys[2]]  # a lookup changes no recency
    assert tier.clear() == [keys[0], keys[3], keys[2]] and len(tier) == 0
    assert CPUOffloadTier(0).store(keys) == ([], [])


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match="num_blocks must be >= 0"):
        CPUOffloadTier(-1)
    with pytest.raises(TypeError, match="num_blocks must be an int"):
        CPUOffloadTier(2.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="enable_kv_cache_events=True"):
        OffloadingKVCacheManager(KVCacheManager(8, BS), CPUOffloadTier(4))
    with pytest.raises(TypeError, match="manager must be a KVCacheManager"):
        OffloadingKVCacheManager(object(), CPUOffloadTier(4))  # type: ignore[arg-type]


def test_stale_cpu_hit_is_refused_before_anything_changes() -> None:
    kv = _tiered(num_blocks=6, cpu_blocks=4)
    a = Request("a", list(range(17)))
    _serve(kv, a)
    kv.free(a)
    _serve(kv, b := Request("b", list(range(100, 117))))
    kv.free(b)
    c = Request("c", list(range(17)))
    blocks, num_hit = kv.get_computed_blocks(c)
    assert num_hit == 16
    kv.cpu_tier.clear()
    before = snapshot(kv.block_pool)
    with pytest.raises(ValueError, match="look the request up again"):
        kv.allocate_slots(c, 1, blocks)
    assert snapshot(kv.block_pool) == before
    blocks, num_hit = kv.get_computed_blocks(c)
    assert num_hit == 0 and kv.allocate_slots(c, 17, blocks) is not None


def test_reset_clears_both_tiers() -> None:
    kv = _tiered(num_blocks=6, cpu_blocks=8)
    for rid, base in (("a", 0), ("b", 100)):
        r = Request(rid, list(range(base, base + 17)))
        _serve(kv, r)
        kv.free(r)
    assert len(kv.cpu_tier) == 4
    kv.take_events()
    assert kv.reset_prefix_cache()
    events = kv.take_events()
    assert (
        TierBlockRemoved(
            tuple(Request("a", list(range(17)), block_size=BS).block_hashes[::-1]), MEDIUM_CPU
        )
        in events
    )
    assert len(kv.cpu_tier) == 0 and kv.block_pool.num_cached_blocks == 0


class OffloadMachine(RuleBasedStateMachine):
    """Random traffic over a small GPU pool and CPU tier, checked against a naive LRU list."""

    @initialize(num_blocks=st.integers(4, 12), cpu_blocks=st.integers(0, 10))
    def setup(self, num_blocks: int, cpu_blocks: int) -> None:
        self.kv = _tiered(num_blocks, cpu_blocks)
        self.cpu_blocks = cpu_blocks
        self.model: list[bytes] = []  # the tier's content, LRU first
        self.running: dict[str, Request] = {}
        self.next_id = 0

    def _model_store(self, hashes: list[bytes]) -> None:
        for h in hashes:
            if h in self.model:
                self.model.remove(h)
            elif self.cpu_blocks and len(self.model) == self.cpu_blocks:
                self.model.pop(0)
            if self.cpu_blocks:
                self.model.append(h)

    def _apply_events(self) -> None:
        for event in self.kv.take_events():
            if isinstance(event, BlockRemoved):
                self._model_store(list(event.block_hashes))
            elif isinstance(event, TierBlockLoaded):
                for h in event.block_hashes:  # loads refresh recency before the step's stores
                    self.model.remove(h)
                    self.model.append(h)

    @rule(
        prefix=st.sampled_from([(), (1, 2, 3, 4), (1, 2, 3, 4, 5, 6, 7, 8), (9,) * 8]),
        suffix=st.lists(st.integers(0, 2), max_size=6),
    )
    def admit(self, prefix: tuple[int, ...], suffix: list[int]) -> None:
        tokens = [*prefix, *suffix]
        if not tokens:
            return
        req = Request(f"r{self.next_id}", tokens)
        self.next_id += 1
        blocks, num_hit = self.kv.get_computed_blocks(req)
        pool = self.kv.block_pool
        cap = (req.num_tokens - 1) // BS
        gpu = 0
        while gpu < cap and pool.get_cached_block(req.block_hashes[gpu]) is not None:
            gpu += 1
        cpu = 0
        while gpu + cpu < cap and req.block_hashes[gpu + cpu] in self.model:
            cpu += 1
        assert (len(blocks), num_hit) == (gpu, (gpu + cpu) * BS)
        before = snapshot(pool)
        if self.kv.allocate_slots(req, req.num_tokens - num_hit, blocks) is None:
            assert snapshot(pool) == before
            self.kv.free(req)
        else:
            req.num_computed_tokens = req.num_tokens
            self.running[req.request_id] = req
        self._apply_events()

    @precondition(lambda self: self.running)
    @rule(data=st.data())
    def decode(self, data: st.DataObject) -> None:
        req = self.running[data.draw(st.sampled_from(sorted(self.running)))]
        req.append_output_token_ids(data.draw(st.integers(0, 2)))
        if self.kv.allocate_slots(req, 1) is not None:
            req.num_computed_tokens += 1
        self._apply_events()

    @precondition(lambda self: self.running)
    @rule(data=st.data())
    def free(self, data: st.DataObject) -> None:
        self.kv.free(self.running.pop(data.draw(st.sampled_from(sorted(self.running)))))
        self._apply_events()

    @invariant()
    def tier_matches_model(self) -> None:
        assert list(self.kv.cpu_tier) == self.model
        assert len(self.kv.cpu_tier) <= self.cpu_blocks
        stats = self.kv.offload_stats
        assert stats.cpu_num_blocks == len(self.model)
        assert stats.stores - stats.cpu_evictions == len(self.model)

    @invariant()
    def pool_is_consistent(self) -> None:
        tables = {
            (rid, 0): [self.kv.block_pool.blocks[i] for i in self.kv.get_block_ids(rid)]
            for rid in self.running
        }
        check_pool_tables(self.kv.block_pool, tables)


OffloadMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestOffloadMachine = OffloadMachine.TestCase


def test_keep_events_false_keeps_no_log_but_counts() -> None:
    kv = OffloadingKVCacheManager(
        KVCacheManager(6, BS, enable_kv_cache_events=True), CPUOffloadTier(8), keep_events=False
    )
    for rid, base in (("a", 0), ("b", 100), ("c", 0)):
        req = Request(rid, list(range(base, base + 17)))
        _serve(kv, req)
        kv.free(req)
    assert kv.take_events() == []
    stats = kv.offload_stats
    assert (stats.stores, stats.loads, stats.cpu_hits) == (8, 4, 16)
    gpu = KVCacheManager(6, BS, enable_kv_cache_events=True)
    with pytest.raises(TypeError, match="keep_events"):
        OffloadingKVCacheManager(gpu, CPUOffloadTier(8), keep_events=0)  # type: ignore[arg-type]
