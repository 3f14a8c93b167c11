"""Address-space allocators: stateful checks of no overlap, accounting and coalescing."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from frag_sim import BuddySpace, ConfigError, FirstFitSpace


def test_first_fit_external_fragmentation() -> None:
    s = FirstFitSpace(100)
    a, b, c = s.alloc(30), s.alloc(30), s.alloc(30)
    assert (a, b, c) == (0, 30, 60)
    s.free(a)
    s.free(c)
    assert s.free_slots == 70 and s.largest_hole == 40
    assert s.alloc(50) is None  # 70 free, no 50-slot hole: external fragmentation
    s.free(b)
    assert s.largest_hole == 100 and s.alloc(100) == 0


def test_buddy_rounds_and_merges() -> None:
    s = BuddySpace(15_728)  # 8192 + 4096 + 2048 + 1024 + 256 + 64 + 32 + 16
    offs = [s.alloc(2048) for _ in range(8)]
    assert offs.count(None) == 1  # exactly 7 chunks of 2048 fit
    assert s.rounded(300) == 512 and s.rounded(512) == 512
    for o in offs:
        if o is not None:
            s.free(o)
    assert s.free_slots == 15_728 and s.largest_hole == 8192
    with pytest.raises(ConfigError):
        BuddySpace(0)


class _SpaceMachine(RuleBasedStateMachine):
    cls: type = FirstFitSpace

    def __init__(self) -> None:
        super().__init__()
        self.cap = 1000
        self.space = self.cls(self.cap)
        self.live: dict[int, int] = {}

    @rule(n=st.integers(1, 300))
    def alloc(self, n: int) -> None:
        off = self.space.alloc(n)
        if off is not None:
            size = self.space.rounded(n)
            for o, sz in self.live.items():
                assert off + size <= o or o + sz <= off, "chunks overlap"
            assert off >= 0 and off + size <= self.cap
            self.live[off] = size

    @precondition(lambda self: self.live)
    @rule(data=st.data())
    def free(self, data: st.DataObject) -> None:
        off = data.draw(st.sampled_from(sorted(self.live)))
        self.space.free(off)
        del self.live[off]

    @invariant()
    def accounting(self) -> None:
        assert self.space.free_slots == self.cap - sum(self.live.values())
        if not self.live:
            assert self.space.largest_hole == (self.cap if self.cls is FirstFitSpace else 512)


class FirstFitMachine(_SpaceMachine):
    cls = FirstFitSpace


class BuddyMachine(_SpaceMachine):
    cls = BuddySpace


TestFirstFit = FirstFitMachine.TestCase
TestFirstFit.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestBuddy = BuddyMachine.TestCase
TestBuddy.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
