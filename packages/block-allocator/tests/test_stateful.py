"""Hypothesis state machine: random allocate / decode / fork / free / hit / evict / reset.

With our package it also drives vLLM 0.34's calls: the side-effect-free probe
``get_num_cached_tokens``, per-request hit limits, preemption and re-admission, stats
drained with ``make_prefix_cache_stats`` (checked against a model, ``reset`` flag and
preempted counters included) and ``free_blocks(evict_first=True)`` from an iterator.

After every step it checks every invariant (``_invariants.py``), reads each running
request's KV back through its block table from a toy physical cache written via
``slot_mapping`` (so prefix hits and copy-on-write must deliver the right tokens), and
replays the KV events into a mirror that must equal the pool's hash index.
"""

from __future__ import annotations

from typing import Any

import pytest
from _allocator_impl import impl
from _invariants import check_manager, manager_snapshot
from _kv_model import KVModel
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

pytestmark = [pytest.mark.lab05, pytest.mark.cow]

# The mini-build's API (Phase 02 lab-05) gets the same machine without events, free orders
# and priorities.
FULL = all(hasattr(impl, name) for name in ("BlockStored", "RetentionPriority"))

PREFIXES = ([7, 7, 7, 7, 7, 7], [1, 2, 3], [7, 7, 7, 7, 9], [4])
TOKENS = st.integers(0, 3)  # a tiny alphabet, so prompts share prefixes and hits happen


class AllocatorMachine(RuleBasedStateMachine):
    mgr: Any

    @initialize(
        num_blocks=st.integers(2, 48),
        block_size=st.sampled_from([1, 2, 3, 4]),
        free_order=st.sampled_from(["classic", "fresh_first"]),
        caching=st.booleans(),
    )
    def setup(self, num_blocks: int, block_size: int, free_order: str, caching: bool) -> None:
        extra = {"free_order": free_order, "enable_kv_cache_events": True} if FULL else {}
        self.mgr = impl.KVCacheManager(num_blocks, block_size, enable_caching=caching, **extra)
        self.model = KVModel(block_size)
        self.running: dict[str, Any] = {}
        self.mirror: set[bytes] = set()
        self.next_id = 0
        self.caching = caching
        self.stats = [0, 0, 0, 0, 0, 0, 0]  # the model of the undrained PrefixCacheStats

    def _snapshot(self) -> tuple[Any, ...]:
        self._drain_events()
        return manager_snapshot(self.mgr, list(self.running))

    def _drain_events(self) -> None:
        for ev in self.mgr.take_events() if FULL else ():
            if isinstance(ev, impl.BlockStored):
                assert not self.mirror & set(ev.block_hashes), "stored twice"
                self.mirror |= set(ev.block_hashes)
            elif isinstance(ev, impl.BlockRemoved):
                assert set(ev.block_hashes) <= self.mirror, "removed an unknown hash"
                self.mirror -= set(ev.block_hashes)
            else:
                self.mirror.clear()

    @rule(
        prefix=st.sampled_from(PREFIXES),
        suffix=st.lists(TOKENS, max_size=8),
        priority=st.integers(0, 2),
        limit=st.one_of(st.none(), st.integers(0, 12)),
    )
    def admit(self, prefix: list[int], suffix: list[int], priority: int, limit: int | None) -> None:
        rid = f"r{self.next_id}"
        self.next_id += 1
        extra = {
            "retention_priority": priority,
            "retention_num_tokens": len(prefix),
            "prefix_cache_hit_limit": limit,
        }
        self._admit(impl.Request(rid, prefix + suffix, **(extra if FULL else {})))

    def _admit(self, req: Any) -> None:
        before = self._snapshot()
        probed = self.mgr.get_num_cached_tokens(req) if FULL else None
        hits, num_hit = self.mgr.get_computed_blocks(req)
        assert num_hit <= req.num_tokens - 1 and num_hit == len(hits) * self.mgr.block_size
        if FULL:
            assert probed == num_hit
            assert num_hit <= (
                req.prefix_cache_hit_limit if req.prefix_cache_hit_limit is not None else num_hit
            )
        if self.mgr.allocate_slots(req, req.num_tokens - num_hit, hits) is None:
            assert self._snapshot() == before
            return
        if FULL and self.caching and req.prefix_cache_hit_limit != 0:
            k = 3 if req.num_preemptions else 0
            self.stats[k : k + 3] = [
                self.stats[k] + 1,
                self.stats[k + 1] + req.num_tokens,
                self.stats[k + 2] + num_hit,
            ]
        req.num_computed_tokens = num_hit
        self.model.step(self.mgr, req, req.num_tokens - num_hit)
        self.running[req.request_id] = req

    @precondition(lambda self: FULL and self.running)
    @rule(data=st.data())
    def preempt(self, data: st.DataObject) -> None:
        """Recompute-style preemption: free, then admit the same request again."""
        req = self.running.pop(data.draw(st.sampled_from(sorted(self.running))))
        self.mgr.free(req)
        req.num_preemptions += 1
        req.num_computed_tokens = 0
        self._admit(req)

    @precondition(lambda self: FULL)
    @rule(prefix=st.sampled_from(PREFIXES), suffix=st.lists(TOKENS, max_size=8))
    def probe(self, prefix: list[int], suffix: list[int]) -> None:
        """get_num_cached_tokens changes nothing, not even the request's block size."""
        req = impl.Request("probe", prefix + suffix)
        before = self._snapshot()
        lookups = dict(self.mgr._prefix_stats._lookups)
        num = self.mgr.get_num_cached_tokens(req)
        assert self._snapshot() == before and self.mgr._prefix_stats._lookups == lookups
        assert req.block_size is None and req.block_hashes == []
        twin = impl.Request("probe-twin", prefix + suffix)
        assert num == self.mgr.get_computed_blocks(twin)[1]
        self.mgr._prefix_stats.forget("probe-twin")

    @precondition(lambda self: FULL)
    @rule()
    def drain_stats(self) -> None:
        got = self.mgr.make_prefix_cache_stats()
        s = self.stats
        assert (got.requests, got.queries, got.hits, got.reset) == (s[0], s[1], s[2], bool(s[6]))
        assert (got.preempted_requests, got.preempted_queries, got.preempted_hits) == tuple(s[3:6])
        self.stats = [0, 0, 0, 0, 0, 0, 0]
        assert self.mgr.make_prefix_cache_stats().requests == 0

    @precondition(lambda self: self.running)
    @rule(data=st.data(), new_tokens=st.lists(TOKENS, max_size=2))
    def decode(self, data: st.DataObject, new_tokens: list[int]) -> None:
        req = self.running[data.draw(st.sampled_from(sorted(self.running)))]
        req.append_output_token_ids(new_tokens)
        pending = req.num_tokens - req.num_computed_tokens
        before = self._snapshot()
        if self.mgr.allocate_slots(req, pending) is None:
            assert self._snapshot() == before  # the tokens stay pending for a later step
            return
        self.model.step(self.mgr, req, pending)

    @precondition(lambda self: self.running)
    @rule(data=st.data())
    def fork(self, data: st.DataObject) -> None:
        parent = self.running[data.draw(st.sampled_from(sorted(self.running)))]
        rid = f"r{self.next_id}"
        self.next_id += 1
        self.running[rid] = self.mgr.fork(parent, rid)

    @precondition(lambda self: self.running)
    @rule(data=st.data())
    def free(self, data: st.DataObject) -> None:
        rid = data.draw(st.sampled_from(sorted(self.running)))
        self.mgr.free(self.running.pop(rid))

    @rule(count=st.integers(1, 48), evict_first=st.booleans())
    def evict(self, count: int, evict_first: bool) -> None:
        """Memory pressure from outside: take blocks (evicting cached ones) and return them."""
        pool = self.mgr.block_pool
        count = min(count, pool.get_num_free_blocks())
        taken = pool.get_new_blocks(count)
        if FULL and evict_first:  # from an iterator, to the head, first block first
            pool.free_blocks(reversed(taken), evict_first=True)
            head = [b.block_id for b in pool.get_free_blocks()[:count]]
            if not self.mgr.block_pool._index.num_prioritized:
                assert head == [b.block_id for b in reversed(taken)]
        else:
            pool.free_blocks(taken[::-1])

    @precondition(lambda self: FULL)
    @rule(data=st.data(), level=st.integers(0, 2))
    def reprioritize(self, data: st.DataObject, level: int) -> None:
        """Change the retention level of some cached blocks, free ones move between queues."""
        pool = self.mgr.block_pool
        cached = [b for b in pool.blocks if b.block_hash is not None]
        if cached:
            chosen = data.draw(st.lists(st.sampled_from(cached), max_size=4, unique=True))
            pool.set_retention_priority(chosen, level)
            assert all(b.retention_priority == level for b in chosen)

    @rule(roll=st.integers(0, 7))
    def reset(self, roll: int) -> None:
        if roll:  # reset 1 time in 8, so the cache lives long enough to be hit and evicted
            return
        ok = self.mgr.reset_prefix_cache()
        assert ok == (not self.running)
        if ok:
            self.stats[6] = 1

    @invariant()
    def everything_holds(self) -> None:
        if not hasattr(self, "mgr"):
            return
        check_manager(self.mgr, self.running)
        for req in self.running.values():
            self.model.check(self.mgr, req)
        self._drain_events()
        pool = self.mgr.block_pool
        if FULL:
            assert self.mirror == {b.block_hash for b in pool.blocks if b.block_hash is not None}
        assert 0.0 <= self.mgr.usage <= 1.0


AllocatorMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestAllocatorMachine = AllocatorMachine.TestCase
