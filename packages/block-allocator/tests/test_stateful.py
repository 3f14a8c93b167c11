"""Hypothesis state machine: random allocate / decode / fork / free / hit / evict / reset.

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

# The seed API (lab-05) gets the same machine without events, free orders and priorities.
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
    )
    def admit(self, prefix: list[int], suffix: list[int], priority: int) -> None:
        rid = f"r{self.next_id}"
        self.next_id += 1
        extra = {"retention_priority": priority, "retention_num_tokens": len(prefix)}
        req = impl.Request(rid, prefix + suffix, **(extra if FULL else {}))
        before = self._snapshot()
        hits, num_hit = self.mgr.get_computed_blocks(req)
        assert num_hit <= req.num_tokens - 1 and num_hit == len(hits) * self.mgr.block_size
        if self.mgr.allocate_slots(req, req.num_tokens - num_hit, hits) is None:
            assert self._snapshot() == before
            return
        req.num_computed_tokens = num_hit
        self.model.step(self.mgr, req, req.num_tokens - num_hit)
        self.running[rid] = req

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

    @rule(count=st.integers(1, 48))
    def evict(self, count: int) -> None:
        """Memory pressure from outside: take blocks (evicting cached ones) and return them."""
        pool = self.mgr.block_pool
        count = min(count, pool.get_num_free_blocks())
        pool.free_blocks(pool.get_new_blocks(count)[::-1])

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
        assert self.mgr.reset_prefix_cache() == (not self.running)

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
