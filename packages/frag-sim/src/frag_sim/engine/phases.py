"""Block-boundary phases of the running sequences: what makes event jumping exact.

A sequence that holds ``C = c + s`` tokens during step ``s`` opens a new block at every
step where ``C`` crosses ``k * block_size + 1``, i.e. every ``block_size`` steps at a fixed
phase ``(s - phase) % block_size == 0``. ``PhaseHistogram`` counts running sequences per
phase, so the blocks the next steps need, and their integral over a window, are sums over
(at most two) slices of two lists, computed at C speed instead of per sequence.
``SlackTracker`` does the same for internal fragmentation, for the time series.
"""

from __future__ import annotations

import heapq

__all__ = ["PhaseHistogram", "SlackTracker"]


class PhaseHistogram:
    """``cnt[p]``: running requests crossing a block boundary at steps ``s % bs == p``."""

    __slots__ = ("bs", "cnt", "n", "pc")

    def __init__(self, block_size: int) -> None:
        self.bs = block_size
        self.cnt = [0] * block_size
        self.pc = [0] * block_size  # p * cnt[p]: first moments for weighted sums
        self.n = 0

    def add(self, phase: int, delta: int) -> None:
        self.cnt[phase] += delta
        self.pc[phase] += delta * phase
        self.n += delta

    def _s0(self, s: int, m: int) -> int:
        """sum_{u<m} cnt[(s + u) % bs] for 0 <= m <= bs."""
        e, cnt, bs = s + m, self.cnt, self.bs
        return sum(cnt[s:e]) if e <= bs else sum(cnt[s:]) + sum(cnt[: e - bs])

    def _s1(self, s: int, m: int) -> int:
        """sum_{u<m} u * cnt[(s + u) % bs] for 0 <= m <= bs."""
        e, cnt, pc, bs = s + m, self.cnt, self.pc, self.bs
        if e <= bs:
            return sum(pc[s:e]) - s * sum(cnt[s:e])
        w = e - bs
        return sum(pc[s:]) - s * sum(cnt[s:]) + sum(pc[:w]) + (bs - s) * sum(cnt[:w])

    def crossings(self, a: int, b: int) -> int:
        """Boundary crossings (one block each) over steps ``[a, b)``."""
        k = b - a
        if k <= 0:
            return 0
        full, rem = divmod(k, self.bs)
        return self.n * full + (self._s0(a % self.bs, rem) if rem else 0)

    def weighted(self, t: int, k: int) -> int:
        """sum over steps ``s`` in ``(t, t + k)`` of crossings at ``s`` times ``t + k - s``.

        A block opened at step ``s`` is held for the ``t + k - s`` remaining steps of the
        window ``[t, t + k)``, so this is the exact block-step integral of the blocks the
        window opens (the trapezoid ``crossings * k / 2`` is only an estimate).
        """
        m = k - 1  # steps t+1 .. t+k-1, weights m .. 1
        if m <= 0:
            return 0
        bs = self.bs
        s = (t + 1) % bs
        q, r = divmod(m, bs)
        total = 0
        if q:
            total += self.n * (q * m - bs * q * (q - 1) // 2) - q * self._s1(s, bs)
        if r:
            total += (m - q * bs) * self._s0(s, r) - self._s1(s, r)
        return total


class SlackTracker:
    """Last-block slack of the running requests, integrated per window (time series only).

    A request of final length ``F`` leaves ``bs * ceil(F / bs) - F`` slots of its last
    block unfilled forever: internal fragmentation from the step it enters that block
    until it ends. The entering step is known at admission, so a heap hands each request
    over to ``now`` (the slack held during the current step) inside the window it enters.
    """

    __slots__ = ("heap", "now", "slack")

    def __init__(self) -> None:
        self.heap: list[tuple[int, int, int, int]] = []  # (enter step, request, epoch, slack)
        self.slack: dict[int, int] = {}  # of running requests already counted in ``now``
        self.now = 0

    def admit(self, i: int, t: int, enter: int, slack: int, epoch: int) -> None:
        if enter <= t:
            self.slack[i] = slack
            self.now += slack
        else:
            heapq.heappush(self.heap, (enter, i, epoch, slack))

    def leave(self, i: int) -> None:
        self.now -= self.slack.pop(i, 0)

    def window(self, t: int, k: int, epoch: dict[int, int]) -> int:
        """Slot-steps of slack over ``[t, t + k)``; ``epoch`` drops requests that left."""
        total, end, heap = k * self.now, t + k, self.heap
        while heap and heap[0][0] < end:
            enter, i, ep, s = heapq.heappop(heap)
            if ep != epoch.get(i):
                continue  # finished or preempted before its last block
            self.slack[i] = s
            self.now += s
            total += s * (end - enter)
        return total
