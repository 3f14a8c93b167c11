"""The event-driven continuous-batching loop shared by every policy.

Iteration-level scheduling as in Orca / vLLM (PagedAttention §4.5): each step every running
request writes one token's KV; new requests are admitted FCFS at step boundaries. Instead
of stepping every token, the loop jumps from event to event (an arrival, a completion, or,
for the paged policy, the step where block demand first exceeds free blocks), and
integrates every metric over the skipped steps in closed form.

Token model (the traces README's "analytic anchors"): a request admitted at step ``t0``
with ``e`` tokens already generated holds ``C = P + e + 1 + (t - t0)`` tokens of KV during
step ``t`` and finishes after the step that brings ``C`` to ``F = P + O``.

Requests come from a :class:`~frag_sim.workload.stream.RequestStream`, one chunk at a time, and
enter the engine when the clock reaches their arrival: every per-request field below is a
dict that holds a request from its arrival to its completion only, so memory follows the
number of requests alive, not the length of the trace.
"""

from __future__ import annotations

import heapq
import math
import sys
import time
from collections import deque
from typing import Any

import numpy as np
import numpy.typing as npt

from ..config import SimConfig
from ..errors import ConfigError
from ..report.metrics import Breakdown, SimResult, Timeseries
from ..workload.requests import Workload
from ..workload.stream import Chunk, RequestStream

_EPS = 1e-9
INF = math.inf

# One event window's split, in slot-steps: (reservation, internal, external, physical,
# logical); logical counts shared blocks once per sequence, physical once.
Window = tuple[int, int, int, int, int]


class Engine:
    """Policy-independent scheduling, time keeping and time-series recording."""

    def __init__(self, workload: Workload | RequestStream, config: SimConfig) -> None:
        stream = workload if isinstance(workload, RequestStream) else RequestStream.of(workload)
        self.stream = stream
        self.cfg = config
        # per live request (arrival to completion): lengths, arrival, progress
        self.P: dict[int, int] = {}
        self.O: dict[int, int] = {}
        self.F: dict[int, int] = {}
        self.A: dict[int, float] = {}
        self.H: dict[int, tuple[int, ...]] = {}  # prefix-block ids, when the stream has them
        self.emitted: dict[int, int] = {}  # tokens generated before the current admission
        self.t0: dict[int, int] = {}
        self.epoch: dict[int, int] = {}
        self.running: dict[int, None] = {}  # admission order: the last is preempted first
        self.waiting: deque[int] = deque()
        self.heap: list[tuple[int, int, int]] = []  # (removal step, request, epoch)
        self.ns = config.n  # sequences per request (parallel sampling)
        self.S = 0  # sum of ns * (P + e + 1 - t0) over running: live = S + ns * n * t
        self.rejected: list[tuple[int, str]] = []
        self.admissions = 0
        self.preemptions = 0
        self.completed = 0
        self.lat_sum = 0.0  # arrival -> completion, summed over completed requests
        self.extra_time = 0.0  # prefill / swap seconds charged to the current step
        # integrals over busy steps (token-slot x steps)
        self.busy = 0
        self.i_live = 0
        self.i_run = 0
        self.i_wait = 0
        self.i_resv = 0
        self.i_int = 0
        self.i_ext = 0
        self.i_logical = 0
        self.i_physical = 0
        self.peak = 0
        self.ts: list[list[Any]] | None = (
            [[] for _ in range(15)] if config.record_timeseries else None
        )
        # the current chunk: arrivals end with an INF sentinel; request id = base + j
        self._chunks = stream.chunks()
        self.base = self.j = self.clen = 0
        self.carr: list[float] = [INF]
        self.cP: list[int] = []
        self.cO: list[int] = []
        self.cH: list[tuple[int, ...]] | None = None
        self.cfit: list[bool] = []
        self.last_arrival = -INF

    def _load_first(self) -> float:
        """Load the first chunk (after the subclasses set up); returns the first arrival."""
        self.next_chunk()
        if self.clen == 0:
            from ..errors import EmptyTraceError

            raise EmptyTraceError(f"workload {self.stream.name!r} holds no request")
        return self.carr[0]

    def next_chunk(self) -> None:
        """Move to the next non-empty chunk (or the INF sentinel at the end)."""
        self.base += self.clen
        self.j = self.clen = 0
        for ch in self._chunks:
            if len(ch):
                self._check_chunk(ch)
                self.carr = ch.arrival_s.tolist()
                self.carr.append(INF)
                self.cP = ch.prompt_len.tolist()
                self.cO = ch.output_len.tolist()
                self.cH = ch.hash_ids
                self.cfit = self.chunk_fits(ch.prompt_len, ch.output_len)
                self.clen = len(ch)
                self.last_arrival = self.carr[-2]
                return
        self.carr, self.cP, self.cO, self.cH, self.cfit = [INF], [], [], None, []

    def _check_chunk(self, ch: Chunk) -> None:
        a = ch.arrival_s
        n = len(a)
        if len(ch.prompt_len) != n or len(ch.output_len) != n:
            raise ConfigError("a chunk's arrival_s, prompt_len and output_len differ in length")
        if not np.all(np.isfinite(a)) or a[0] < self.last_arrival or np.any(np.diff(a) < 0):
            raise ConfigError("arrival_s must be finite and sorted ascending across chunks")
        if int(ch.prompt_len.min()) < 1 or int(ch.output_len.min()) < 1:
            raise ConfigError("prompt_len and output_len must be >= 1 token for every request")

    def register(self, i: int, j: int) -> None:
        """Request ``i`` (row ``j`` of the chunk) enters the engine: it starts waiting."""
        p, o = self.cP[j], self.cO[j]
        self.P[i] = p
        self.O[i] = o
        self.F[i] = p + o
        self.A[i] = self.carr[j]
        self.emitted[i] = 0
        self.t0[i] = 0
        self.epoch[i] = 0
        if self.cH is not None:
            self.H[i] = self.cH[j]

    def forget(self, i: int) -> None:
        """Request ``i`` completed: drop its state."""
        del self.P[i], self.O[i], self.F[i], self.A[i], self.emitted[i], self.t0[i]
        del self.epoch[i]
        self.H.pop(i, None)

    def arrive(self, due: float) -> None:
        """Queue (or reject) every request arriving at or before ``due``."""
        waiting = self.waiting
        while self.carr[self.j] <= due:
            j = self.j
            i = self.base + j
            if self.cfit[j]:
                self.register(i, j)
                waiting.append(i)
            else:
                self._reject(i, self.cP[j], self.cO[j])
            self.j = j + 1
            if self.j == self.clen:
                self.next_chunk()

    @property
    def next_arrival(self) -> float:
        return self.carr[self.j]

    # an arrival behind a waiting queue head can be folded into the window (not with
    # prefix caching: blocks cached meanwhile may let the head start earlier)
    defer_arrivals = True

    # -- hooks for the policies ---------------------------------------------------------
    def why_not(self, p: int, o: int) -> str | None:
        """Why a request of prompt ``p`` and output ``o`` can never run here (or None)."""
        raise NotImplementedError

    def pressure(self, t: int) -> bool:
        return False

    def try_admit(self, i: int, t: int) -> bool:
        raise NotImplementedError

    def release(self, i: int, t: int, preempted: bool) -> None:
        raise NotImplementedError

    def horizon(self, t: int, h: int) -> int:
        return h

    def integrate(self, t: int, k: int, live: int, waiting: bool) -> Window | None:
        """Add window ``[t, t + k)`` to the integrals; its split when recording a series."""
        raise NotImplementedError

    def allocated_tokens(self) -> int:
        raise NotImplementedError

    def extras(self) -> dict[str, float]:
        return {"prefix_hit_rate": 0.0, "cpu_hit_rate": 0.0, "cow_copies": 0}

    # -- shared mechanics ---------------------------------------------------------------
    def chunk_fits(self, p: npt.NDArray[np.int64], o: npt.NDArray[np.int64]) -> list[bool]:
        """Per request of a chunk: can it ever run (else it is rejected on arrival)?"""
        mml = self.cfg.max_model_len
        return [
            pi + oi <= mml and self.why_not(pi, oi) is None
            for pi, oi in zip(p.tolist(), o.tolist(), strict=True)
        ]

    def _reject(self, i: int, p: int, o: int) -> None:
        f, mml = p + o, self.cfg.max_model_len
        reason = self.why_not(p, o) if f <= mml else None
        if reason is None:
            reason = f"prompt + output = {f} > max_model_len={mml}"
        self.rejected.append((i, reason))

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

    def _defer_arrivals(self, now: float, d: float, t: int, h: int) -> int:
        """Queue the arrivals up to the start of step ``h`` without making them events.

        Behind a queue head that cannot start they only lengthen the queue (FCFS). Returns
        the queue-steps the new arrivals add inside ``[t, h)``.
        """
        dt, waiting = self.cfg.step_time_s, self.waiting
        end = now + d + (h - t - 1) * dt + _EPS  # start of step h
        queued = 0
        while self.carr[self.j] <= end:
            j = self.j
            i = self.base + j
            if self.cfit[j]:
                gap = self.carr[j] - now - d
                k = 1 if gap <= _EPS else 1 + math.ceil(gap / dt - _EPS)
                self.register(i, j)
                waiting.append(i)
                if t + k < h:
                    queued += h - t - k
            else:
                self._reject(i, self.cP[j], self.cO[j])
            self.j = j + 1
            if self.j == self.clen:
                self.next_chunk()
        return queued

    def run(self) -> SimResult:
        wall = time.perf_counter()
        cfg = self.cfg
        dt, cap, ns = cfg.step_time_s, cfg.capacity_tokens, self.ns
        running, waiting, heap, epoch = self.running, self.waiting, self.heap, self.epoch
        # bound methods and counters as locals: this loop runs once per event
        heappop, release, stop, start = heapq.heappop, self.release, self.stop, self.start
        pressure, try_admit, horizon, integrate = (
            self.pressure,
            self.try_admit,
            self.horizon,
            self.integrate,
        )
        ts = self.ts
        defer_ok = ts is None and self.defer_arrivals
        i_live, i_run, i_wait, busy, peak = 0, 0, 0, 0, 0
        max_seqs = cfg.max_num_seqs or sys.maxsize
        t, now = 0, self._load_first()
        self.first_arrival = now
        arrive, forget, A = self.arrive, self.forget, self.A
        while True:
            while heap and heap[0][0] <= t:
                _, i, ep = heappop(heap)
                if ep == epoch.get(i):
                    release(i, t, False)
                    stop(i, t)
                    self.completed += 1
                    self.lat_sum += now - A[i]
                    forget(i)
            arrive(now + _EPS)
            if not pressure(t) or not running:
                while waiting and len(running) < max_seqs and try_admit(waiting[0], t):
                    start(waiting.popleft(), t)
            n = len(running)
            # free memory counts as external fragmentation only while memory blocks the
            # queue head; a full max_num_seqs batch leaves it idle
            mem_blocked = bool(waiting) and n < max_seqs
            if n == 0:
                if waiting:
                    raise RuntimeError(  # never_fits() should have rejected it
                        f"request {waiting[0]} cannot run on an empty system"
                    )
                if self.next_arrival == INF:
                    break
                now = max(now, self.next_arrival)
                continue
            d = dt + self.extra_time
            self.extra_time = 0.0
            while heap[0][2] != epoch[heap[0][1]]:  # a running request is always in it
                heappop(heap)
            h = heap[0][0]
            # behind a queue head that cannot start, an arrival changes nothing but the
            # queue length (FCFS): it is not an event, it joins the queue in closed form
            defer = defer_ok and bool(waiting)
            nxt = self.next_arrival
            if nxt != INF and not defer:
                gap = nxt - now - d
                j = 1 if gap <= _EPS else 1 + math.ceil(gap / dt - _EPS)
                if t + j < h:
                    h = t + j
            h = horizon(t, h)
            k = h - t
            seqs = n * ns
            live = k * self.S + seqs * (k * t + k * (k - 1) // 2)
            i_live += live
            i_run += n * k
            i_wait += len(waiting) * k
            if defer:
                i_wait += self._defer_arrivals(now, d, t, h)
            busy += k
            if n > peak:
                peak = n
            win = integrate(t, k, live, mem_blocked)
            if ts is not None and win is not None:
                resv, internal, ext, phys, logical = win
                mem = k * cap + logical - phys  # shared slots counted as saved
                row = (
                    t,
                    now,
                    n,
                    len(waiting),
                    self.S + seqs * t,
                    self.allocated_tokens(),
                    self.admissions,
                    self.preemptions,
                    k,
                    live,
                    resv,
                    internal,
                    ext,
                    mem - live - resv - internal - ext,
                    mem,
                )
                for col, v in zip(ts, row, strict=True):
                    col.append(v)
            now += d + (k - 1) * dt
            t = h
        self.i_live, self.i_run, self.i_wait, self.busy, self.peak = (
            i_live,
            i_run,
            i_wait,
            busy,
            peak,
        )
        return self._result(now, time.perf_counter() - wall)

    def _result(self, now: float, wall: float) -> SimResult:
        ex = self.extras()
        cfg, busy = self.cfg, max(self.busy, 1)
        # every integral is an exact integer of slot-steps; sharing counts as extra memory
        saved = self.i_logical - self.i_physical
        denom = cfg.capacity_tokens * busy + saved
        idle = denom - (self.i_live + self.i_resv + self.i_int + self.i_ext)
        if saved < 0 or idle < 0:
            raise RuntimeError(f"internal: inconsistent integrals (saved {saved}, idle {idle})")
        bd = Breakdown(
            self.i_live / denom,
            self.i_resv / denom,
            self.i_int / denom,
            self.i_ext / denom,
            idle / denom,
        )
        ts = None
        if self.ts is not None:
            c = self.ts
            i64, f64 = np.int64, np.float64
            ts = Timeseries(
                step=np.asarray(c[0], i64),
                time_s=np.asarray(c[1], f64),
                running=np.asarray(c[2], i64),
                waiting=np.asarray(c[3], i64),
                live_tokens=np.asarray(c[4], i64),
                allocated_tokens=np.asarray(c[5], i64),
                admitted_total=np.asarray(c[6], i64),
                preemptions_total=np.asarray(c[7], i64),
                window_steps=np.asarray(c[8], i64),
                token_states=np.asarray(c[9], f64),
                reservation=np.asarray(c[10], f64),
                internal=np.asarray(c[11], f64),
                external=np.asarray(c[12], f64),
                idle=np.asarray(c[13], f64),
                memory=np.asarray(c[14], f64),
            )
        return SimResult(
            config=cfg,
            workload=self.stream.name,
            num_requests=self.base + self.j,
            completed=self.completed,
            rejected=tuple(self.rejected),
            admissions=self.admissions,
            preemptions=self.preemptions,
            peak_running=self.peak,
            mean_running=self.i_run / busy,
            mean_waiting=self.i_wait / busy,
            busy_steps=self.busy,
            sim_time_s=now - self.first_arrival,
            breakdown=bd,
            token_usage=self.i_live / self.i_logical if self.i_logical else 0.0,
            prefix_hit_rate=ex["prefix_hit_rate"],
            sharing_saved=saved / self.i_logical if self.i_logical else 0.0,
            mean_latency_s=self.lat_sum / self.completed if self.completed else math.nan,
            wall_s=wall,
            timeseries=ts,
            cow_copies=int(ex["cow_copies"]),
            cpu_hit_rate=ex["cpu_hit_rate"],
        )
