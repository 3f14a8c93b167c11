"""The event-driven continuous-batching loop shared by every policy.

Iteration-level scheduling as in Orca / vLLM (PagedAttention §4.5): each step every running
request writes one token's KV; new requests are admitted FCFS at step boundaries. Instead
of stepping every token, the loop jumps from event to event (an arrival, a completion, or,
for the paged policy, the step where block demand first exceeds free blocks), and
integrates every metric over the skipped steps in closed form.

Token model (the traces README's "analytic anchors"): a request admitted at step ``t0``
with ``e`` tokens already generated holds ``C = P + e + 1 + (t - t0)`` tokens of KV during
step ``t`` and finishes after the step that brings ``C`` to ``F = P + O``.
"""

from __future__ import annotations

import heapq
import math
import time
from collections import deque
from typing import Any

import numpy as np

from .config import SimConfig
from .metrics import Breakdown, SimResult, Timeseries
from .workload import Workload

_EPS = 1e-9


class Engine:
    """Policy-independent scheduling, time keeping and time-series recording."""

    def __init__(self, workload: Workload, config: SimConfig) -> None:
        self.wl = workload
        self.cfg = config
        self.P: list[int] = workload.prompt_len.tolist()
        self.O: list[int] = workload.output_len.tolist()
        self.arr: list[float] = workload.arrival_s.tolist()
        n = len(self.P)
        self.F: list[int] = [p + o for p, o in zip(self.P, self.O, strict=False)]
        self.emitted = [0] * n  # tokens generated before the current admission
        self.t0 = [0] * n
        self.epoch = [0] * n
        self.done_at = [math.nan] * n
        self.running: dict[int, None] = {}  # admission order: the last is preempted first
        self.waiting: deque[int] = deque()
        self.heap: list[tuple[int, int, int]] = []  # (removal step, request, epoch)
        self.ns = config.n  # sequences per request (parallel sampling)
        self.S = 0  # sum of ns * (P + e + 1 - t0) over running: live = S + ns * n * t
        self.rejected: list[tuple[int, str]] = []
        self.admissions = 0
        self.preemptions = 0
        self.completed = 0
        self.extra_time = 0.0  # prefill / swap seconds charged to the current step
        # integrals over busy steps (token-slot x steps)
        self.busy = 0
        self.i_live = 0.0
        self.i_run = 0
        self.i_wait = 0
        self.i_resv = 0.0
        self.i_int = 0.0
        self.i_ext = 0.0
        self.i_free_ext = 0.0
        self.i_logical = 0.0
        self.i_physical = 0.0
        self.peak = 0
        self.ts: list[list[Any]] | None = (
            [[] for _ in range(8)] if config.record_timeseries else None
        )

    # -- hooks for the policies ---------------------------------------------------------
    def never_fits(self, i: int) -> str | None:
        raise NotImplementedError

    def pressure(self, t: int) -> bool:
        return False

    def try_admit(self, i: int, t: int) -> bool:
        raise NotImplementedError

    def release(self, i: int, t: int, preempted: bool) -> None:
        raise NotImplementedError

    def horizon(self, t: int, h: int) -> int:
        return h

    def integrate(self, t: int, k: int, live: float, waiting: bool) -> None:
        raise NotImplementedError

    def allocated_tokens(self) -> int:
        raise NotImplementedError

    def extras(self) -> dict[str, float]:
        return {"prefix_hit_rate": 0.0}

    # -- shared mechanics ---------------------------------------------------------------
    def start(self, i: int, t: int) -> None:
        """Bookkeeping of an admission at step ``t`` (the policy already took memory)."""
        e = self.emitted[i]
        self.running[i] = None
        self.t0[i] = t
        self.S += self.ns * (self.P[i] + e + 1 - t)
        self.admissions += 1
        heapq.heappush(self.heap, (t + self.O[i] - e, i, self.epoch[i]))

    def stop(self, i: int, t: int) -> None:
        """Remove running request ``i`` before step ``t`` (completion or preemption)."""
        del self.running[i]
        self.S -= self.ns * (self.P[i] + self.emitted[i] + 1 - self.t0[i])
        self.epoch[i] += 1

    def preempt(self, i: int, t: int) -> None:
        """Preempt ``i`` before step ``t``: it keeps its generated tokens, goes to the front."""
        emitted = self.P[i] + self.emitted[i] + 1 + (t - 1 - self.t0[i]) - self.P[i]
        self.release(i, t, True)
        self.stop(i, t)
        self.emitted[i] = emitted
        self.waiting.appendleft(i)
        self.preemptions += 1

    def run(self) -> SimResult:
        wall = time.perf_counter()
        cfg, arr, n_req = self.cfg, self.arr, len(self.arr)
        dt = cfg.step_time_s
        running, waiting, heap = self.running, self.waiting, self.heap
        max_seqs = cfg.max_num_seqs or n_req + 1
        t, now, nxt = 0, arr[0], 0
        while True:
            while heap and heap[0][0] <= t:
                _, i, ep = heapq.heappop(heap)
                if ep == self.epoch[i]:
                    self.release(i, t, False)
                    self.stop(i, t)
                    self.completed += 1
                    self.done_at[i] = now
            while nxt < n_req and arr[nxt] <= now + _EPS:
                if self.F[nxt] > cfg.max_model_len:
                    self.rejected.append(
                        (
                            nxt,
                            f"prompt + output = {self.F[nxt]} > max_model_len={cfg.max_model_len}",
                        )
                    )
                else:
                    reason = self.never_fits(nxt)
                    if reason is None:
                        waiting.append(nxt)
                    else:
                        self.rejected.append((nxt, reason))
                nxt += 1
            if not self.pressure(t) or not running:
                while waiting and len(running) < max_seqs and self.try_admit(waiting[0], t):
                    self.start(waiting.popleft(), t)
            # free memory counts as external fragmentation only while memory blocks the
            # queue head; a full max_num_seqs batch leaves it idle
            mem_blocked = bool(waiting) and len(running) < max_seqs
            n = len(running)
            if n == 0:
                if waiting:
                    raise RuntimeError(  # never_fits() should have rejected it
                        f"request {waiting[0]} cannot run on an empty system"
                    )
                if nxt >= n_req:
                    break
                now = max(now, arr[nxt])
                continue
            d = dt + self.extra_time
            self.extra_time = 0.0
            while heap and heap[0][2] != self.epoch[heap[0][1]]:
                heapq.heappop(heap)
            h = heap[0][0]
            if nxt < n_req:
                gap = arr[nxt] - now - d
                j = 1 if gap <= _EPS else 1 + math.ceil(gap / dt - _EPS)
                h = min(h, t + j)
            h = self.horizon(t, h)
            k = h - t
            seqs = n * self.ns
            live = k * self.S + seqs * (k * t + k * (k - 1) // 2)
            self.i_live += live
            self.i_run += n * k
            self.i_wait += len(waiting) * k
            self.busy += k
            if n > self.peak:
                self.peak = n
            self.integrate(t, k, live, mem_blocked)
            if self.ts is not None:
                for col, v in zip(
                    self.ts,
                    (
                        t,
                        now,
                        n,
                        len(waiting),
                        self.S + seqs * t,
                        self.allocated_tokens(),
                        self.admissions,
                        self.preemptions,
                    ),
                    strict=False,
                ):
                    col.append(v)
            now += d + (h - t - 1) * dt
            t = h
        return self._result(now, time.perf_counter() - wall)

    def _result(self, now: float, wall: float) -> SimResult:
        ex = self.extras()  # may finalise the physical integral
        cfg, busy = self.cfg, max(self.busy, 1)
        cap = cfg.capacity_tokens * busy
        saved = max(0.0, self.i_logical - self.i_physical)
        denom = cap + saved
        ext = self.i_ext
        idle = denom - (self.i_live + self.i_resv + self.i_int + ext)
        if idle < 0:  # the paged in-window free memory is a trapezoid estimate: stay at 100%
            ext += idle
            idle = 0.0
        bd = Breakdown(
            self.i_live / denom,
            self.i_resv / denom,
            self.i_int / denom,
            ext / denom,
            idle / denom,
        )
        lat = [d - a for d, a in zip(self.done_at, self.arr, strict=False) if not math.isnan(d)]
        ts = None
        if self.ts is not None:
            c = self.ts
            ts = Timeseries(
                np.asarray(c[0], np.int64),
                np.asarray(c[1], np.float64),
                *(np.asarray(x, np.int64) for x in c[2:]),
            )
        return SimResult(
            config=cfg,
            workload=self.wl.name,
            num_requests=len(self.arr),
            completed=self.completed,
            rejected=tuple(self.rejected),
            admissions=self.admissions,
            preemptions=self.preemptions,
            peak_running=self.peak,
            mean_running=self.i_run / busy,
            mean_waiting=self.i_wait / busy,
            busy_steps=self.busy,
            sim_time_s=now - self.arr[0],
            breakdown=bd,
            token_usage=self.i_live / self.i_logical if self.i_logical else 0.0,
            prefix_hit_rate=ex["prefix_hit_rate"],
            sharing_saved=saved / self.i_logical if self.i_logical else 0.0,
            mean_latency_s=float(np.mean(lat)) if lat else math.nan,
            wall_s=wall,
            timeseries=ts,
        )
