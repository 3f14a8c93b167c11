"""The contiguous policies' event loop: ``Engine.run`` with ``ContiguousEngine``'s hooks inlined.

``simulate()`` replays a single-sequence workload under ``max`` / ``pow2`` / ``exact``
without a time series through this function: the same steps in the same order as
``Engine.run`` driving :class:`~frag_sim.engine.contiguous.ContiguousEngine` (admission =
``try_admit`` + ``start``, completion = ``release`` + ``stop``, the window of
``integrate``), with the counters in locals and each chunk's reservations computed once
per chunk. Chunks still come from, and go back to, the real address space
(``BuddySpace`` / ``FirstFitSpace``). One shortcut, exact by construction: after the
queue head failed to get a chunk, it is not tried again until a chunk is freed (the
space only changes on free, so the answer would be the same). Tests compare the loop with
``Engine.run`` on the same engine.
"""

from __future__ import annotations

import heapq
import math
import sys
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from ..report.metrics import SimResult
from .base import _EPS, INF

if TYPE_CHECKING:
    from .contiguous import ContiguousEngine

__all__ = ["run_contiguous"]

# a chunk row: prompt, output, arrival, reserved slots, slots the allocator takes
Row = tuple[int, int, float, int, int]


def _rows(eng: ContiguousEngine) -> Iterator[tuple[list[float], list[Row], list[bool]]]:
    """Per chunk: arrivals (+ INF), rows, fits (``Engine.chunk_fits`` over ``why_not``)."""
    space, reservation, mml = eng.space, eng.reservation, eng.cfg.max_model_len
    rounded, fits_empty, cap = space.rounded, space.fits_when_empty, space.capacity
    for ch in eng._chunks:
        if not len(ch):
            continue
        eng._check_chunk(ch)
        eng.last_arrival = float(ch.arrival_s[-1])
        ps, os_, arr = ch.prompt_len.tolist(), ch.output_len.tolist(), ch.arrival_s.tolist()
        res = [reservation(p, o) for p, o in zip(ps, os_, strict=True)]
        took = [rounded(r) for r in res]
        rows = list(zip(ps, os_, arr, res, took, strict=True))
        fit = [
            p + o <= mml and ra <= cap and fits_empty(r)
            for p, o, _, r, ra in rows
        ]  # fmt: skip
        arr.append(INF)
        yield arr, rows, fit


def run_contiguous(eng: ContiguousEngine) -> SimResult:
    """Replay ``eng``'s request stream (one sequence each, no time series)."""
    wall = time.perf_counter()
    cfg = eng.cfg
    dt, cap, prefill = cfg.step_time_s, cfg.capacity_tokens, cfg.prefill_time_per_token_s
    alloc, free_chunk = eng.space.alloc, eng.space.free
    waiting = eng.waiting
    heappop, heappush, eps, ceil = heapq.heappop, heapq.heappush, _EPS, math.ceil
    i_live, i_run, i_wait, busy, peak, admissions, completed = 0, 0, 0, 0, 0, 0, 0
    i_resv, i_int, i_alloc, i_ext, lat_sum, extra = 0, 0, 0, 0, 0.0, 0.0
    S = sum_f = sum_r = sum_a = 0
    max_seqs = cfg.max_num_seqs or sys.maxsize
    live_rows: dict[int, Row] = {}
    running: dict[int, tuple[int, int]] = {}  # request -> (admission step, chunk offset)
    heap: list[tuple[int, int]] = []  # (completion step, request)
    head_failed = False  # the queue head found no chunk, and nothing was freed since
    chunks = _rows(eng)
    base, j = 0, 0
    arr, rows, fit = next(chunks, ([INF], [], []))
    clen = len(rows)
    if not clen:
        from ..errors import EmptyTraceError

        raise EmptyTraceError(f"workload {eng.stream.name!r} holds no request")
    t, now = 0, arr[0]
    first = now
    while True:
        while heap and heap[0][0] <= t:
            _, i = heappop(heap)
            p, o, a, r, ra = live_rows.pop(i)
            t0, off = running.pop(i)
            free_chunk(off)
            head_failed = False
            sum_f -= p + o
            sum_r -= r
            sum_a -= ra
            S -= p + 1 - t0
            completed += 1
            lat_sum += now - a
        due = now + eps
        while arr[j] <= due:
            i = base + j
            if fit[j]:
                live_rows[i] = rows[j]
                waiting.append(i)
            else:
                eng._reject(i, rows[j][0], rows[j][1])
            j += 1
            if j == clen:
                base += clen
                j = 0
                arr, rows, fit = next(chunks, ([INF], [], []))
                clen = len(rows)
        while waiting and not head_failed and len(running) < max_seqs:
            i = waiting[0]
            p, o, a, r, ra = live_rows[i]
            got = alloc(r)
            if got is None:
                head_failed = True
                break
            waiting.popleft()
            sum_f += p + o
            sum_r += r
            sum_a += ra
            extra += p * prefill
            running[i] = (t, got)
            S += p + 1 - t
            admissions += 1
            heappush(heap, (t + o, i))
        n = len(running)
        defer = bool(waiting)
        mem_blocked = defer and n < max_seqs
        if n == 0:
            if waiting:
                raise RuntimeError(f"request {waiting[0]} cannot run on an empty system")
            if arr[j] == INF:
                break
            now = max(now, arr[j])
            continue
        d = dt + extra
        extra = 0.0
        h = heap[0][0]
        if not defer and arr[j] != INF:
            gap = arr[j] - now - d
            k = 1 if gap <= eps else 1 + ceil(gap / dt - eps)
            if t + k < h:
                h = t + k
        k = h - t
        live = k * S + n * (k * t + k * (k - 1) // 2)
        i_live += live
        i_run += n * k
        if defer:  # Engine._defer_arrivals
            i_wait += len(waiting) * k
            end = now + d + (h - t - 1) * dt + eps
            while arr[j] <= end:
                i = base + j
                if fit[j]:
                    gap = arr[j] - now - d
                    q = 1 if gap <= eps else 1 + ceil(gap / dt - eps)
                    live_rows[i] = rows[j]
                    waiting.append(i)
                    if t + q < h:
                        i_wait += h - t - q
                else:
                    eng._reject(i, rows[j][0], rows[j][1])
                j += 1
                if j == clen:
                    base += clen
                    j = 0
                    arr, rows, fit = next(chunks, ([INF], [], []))
                    clen = len(rows)
        busy += k
        if n > peak:
            peak = n
        # ContiguousEngine.integrate
        i_resv += k * sum_f - live
        i_int += k * (sum_r - sum_f)
        i_alloc += k * sum_a
        i_ext += k * (sum_a - sum_r) + (k * (cap - sum_a) if mem_blocked else 0)
        now += d + (k - 1) * dt
        t = h
    eng.base, eng.j, eng.first_arrival = base, 0, first
    eng.i_live, eng.i_run, eng.i_wait, eng.busy, eng.peak = i_live, i_run, i_wait, busy, peak
    eng.i_resv += i_resv
    eng.i_int += i_int
    eng.i_ext += i_ext
    eng.i_logical += i_alloc
    eng.i_physical += i_alloc
    eng.admissions += admissions
    eng.completed += completed
    eng.lat_sum = lat_sum
    eng.S, eng.extra_time = S, extra
    return eng._result(now, time.perf_counter() - wall)
