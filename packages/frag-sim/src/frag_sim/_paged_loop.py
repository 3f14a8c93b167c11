"""The event loop of the paged hot path: ``Engine.run`` with its per-event hooks inlined.

``simulate()`` replays a single-sequence workload without prefix caching through
:class:`~frag_sim._paged_fast.SingleSeqPagedEngine`; without a time series, its ``run``
is this function. It takes the same steps in the same order as ``Engine.run`` driving that
engine's hooks, with the bodies that run once per event or per request written out in
place: the block-demand check of ``pressure``, admission (``try_admit`` + ``start``),
completion (``release`` + ``stop``, its slot-step integrals precomputed per request for a
first admission), the crossings of ``horizon`` and the window of ``integrate``, with every
counter the loop touches kept in a local. The rare cases, a preemption and a window that
runs short of blocks, go through ``PagedEngine``'s methods on the engine's own fields
(the locals are written back first). Blocks still come from, and go back to, the real
``BlockPool``. Tests compare it with ``PagedEngine`` and with the token-by-token reference.
"""

from __future__ import annotations

import heapq
import math
import time
from typing import TYPE_CHECKING

import numpy as np

from ._engine import _EPS
from .metrics import SimResult
from .paged import PagedEngine

if TYPE_CHECKING:
    from ._paged_fast import SingleSeqPagedEngine

__all__ = ["run_single_seq"]


def _per_request(
    eng: SingleSeqPagedEngine,
) -> tuple[list[int], list[int], list[int], tuple[list[int], list[int], list[int]]]:
    """Per request, vectorised: the first token count of its last block, that block's
    slack, its final block count, and the (reservation, internal, allocated) slot-steps of
    a run from its first admission to its end (``release``'s closed forms at ``e = 0``)."""
    bs = eng.bs
    p = eng.wl.prompt_len.astype(np.int64)
    f = p + eng.wl.output_len
    nb_f = -(-f // bs)
    last_in = bs * (nb_f - 1) + 1
    slack = bs * nb_f - f
    c0, dn = p + 1, f - p - 1
    q1, r1 = np.divmod(f, bs)
    q0, r0 = np.divmod(c0 - 1, bs)
    alloc = bs * (bs * (q1 * (q1 + 1) - q0 * (q0 + 1)) // 2 + r1 * (q1 + 1) - r0 * (q0 + 1))
    last = f - np.maximum(c0, last_in) + 1
    internal = np.where(last > 0, last * slack, 0)
    resv = alloc - (dn + 1) * c0 - dn * (dn + 1) // 2 - internal
    a, b, c, d, e, g = (x.tolist() for x in (last_in, slack, nb_f, resv, internal, alloc))
    return a, b, c, (d, e, g)


def run_single_seq(eng: SingleSeqPagedEngine) -> SimResult:
    """Replay ``eng``'s workload (no time series) and return its :class:`SimResult`."""
    wall = time.perf_counter()
    cfg, arr, n_req = eng.cfg, eng.arr, len(eng.arr)
    dt, cap, bs, usable = cfg.step_time_s, cfg.capacity_tokens, eng.bs, eng.usable
    running, waiting, heap, epoch = eng.running, eng.waiting, eng.heap, eng.epoch
    P, out, emitted, t0, done_at = eng.P, eng.O, eng.emitted, eng.t0, eng.done_at
    tables, syn, phase, hist = eng.tables, eng.syn, eng.phase, eng.hist
    cnt, pc = hist.cnt, hist.pc
    heappop, heappush, get_new = heapq.heappop, heapq.heappush, eng.pool.get_new_blocks
    free_blocks, weighted = eng.pool.free_blocks, hist.weighted
    F = eng.F
    last_in, slack, nb_f, (resv0, int0, alloc0) = _per_request(eng)
    swap, swap_cost = cfg.preemption == "swap", cfg.swap_time_per_block_s
    prefill, floor, eps, ceil = cfg.prefill_time_per_token_s, eng.floor, _EPS, math.ceil
    i_live, i_run, i_wait, i_ext, busy, peak, admissions, completed = 0, 0, 0, 0, 0, 0, 0, 0
    i_resv, i_int, i_alloc, lsync, query, k_blocked = 0, 0, 0, 0, 0, 0
    free, owed, S, extra, hn = eng.free, eng.owed, eng.S, eng.extra_time, hist.n
    max_seqs = cfg.max_num_seqs or n_req + 1
    t, now, nxt = 0, arr[0], 0
    fits = eng.fits()
    while True:
        while heap and heap[0][0] <= t:
            _, i, ep = heappop(heap)
            if ep != epoch[i]:
                continue
            # release(i, t, False) + stop(i, t): it held c0 .. F tokens over its steps
            e = emitted[i]
            c0 = P[i] + e + 1
            blocks = tables.pop(i)
            nb0 = len(blocks)  # taken at admission: nothing syncs it inside this loop
            free += nb0  # the owed ones below come and go right here
            grow = nb_f[i] - nb0
            if grow:
                blocks += get_new(grow)
                owed -= grow
            lsync -= nb0
            if e:  # a re-admission: its slot-step integrals from c0 on
                c1 = F[i]
                dn = c1 - c0
                q1, r1 = divmod(c1, bs)
                q0, r0 = divmod(c0 - 1, bs)
                alloc = bs * (
                    bs * (q1 * (q1 + 1) - q0 * (q0 + 1)) // 2 + r1 * (q1 + 1) - r0 * (q0 + 1)
                )
                last = c1 - max(c0, last_in[i]) + 1  # steps spent in its last block
                internal = last * slack[i] if last > 0 else 0
                i_resv += alloc - (dn + 1) * c0 - dn * (dn + 1) // 2 - internal
                i_int += internal
                i_alloc += alloc
            else:
                i_resv += resv0[i]
                i_int += int0[i]
                i_alloc += alloc0[i]
            blocks.reverse()  # tail first, as KVCacheManager.free does
            free_blocks(blocks)
            ph = phase[i]
            cnt[ph] -= 1
            pc[ph] -= ph
            hn -= 1
            syn[i] = 0
            del running[i]
            S -= c0 - t0[i]
            epoch[i] += 1
            completed += 1
            done_at[i] = now
        due = now + eps
        while nxt < n_req and arr[nxt] <= due:
            if fits[nxt]:
                waiting.append(nxt)
            else:
                eng._reject(nxt)
            nxt += 1
        need, blocked = cnt[t % bs], False
        if need:
            if need <= free - owed:
                owed += need
            else:  # preemption: the general path, on the engine's own fields
                eng.free, eng.owed, eng.S, eng.extra_time, hist.n = free, owed, S, extra, hn
                blocked = PagedEngine.pressure(eng, t)
                free, owed, S, extra, hn = eng.free, eng.owed, eng.S, eng.extra_time, hist.n
        if not blocked or not running:
            while waiting and len(running) < max_seqs:
                i = waiting[0]
                p, e = P[i], emitted[i]
                c = p + e + 1
                nb = -(-c // bs)
                if nb > free - owed:
                    break
                waiting.popleft()
                tables[i] = get_new(nb)
                free -= nb
                syn[i] = c
                lsync += nb
                phase[i] = ph = (t - p - e) % bs
                cnt[ph] += 1
                pc[ph] += ph
                hn += 1
                if not e:
                    query += p
                if e and swap:
                    extra += -(-(p + e) // bs) * swap_cost
                else:
                    extra += (p + e) * prefill
                running[i] = None
                t0[i] = t
                S += c - t
                admissions += 1
                heappush(heap, (t + out[i] - e, i, epoch[i]))
        n = len(running)
        defer = bool(waiting)  # behind a blocked queue head arrivals are not events
        mem_blocked = defer and n < max_seqs
        if n == 0:
            if waiting:
                raise RuntimeError(f"request {waiting[0]} cannot run on an empty system")
            if nxt >= n_req:
                break
            now = max(now, arr[nxt])
            continue
        d = dt + extra
        extra = 0.0
        while heap[0][2] != epoch[heap[0][1]]:
            heappop(heap)
        h = heap[0][0]
        if nxt < n_req and not defer:
            gap = arr[nxt] - now - d
            j = 1 if gap <= eps else 1 + ceil(gap / dt - eps)
            if t + j < h:
                h = t + j
        m, cross = h - t - 1, 0
        if m > 0:
            if m < bs:
                rem = m
            else:
                full, rem = divmod(m, bs)
                cross = hn * full
            if rem:
                s = (t + 1) % bs
                e = s + rem
                cross += sum(cnt[s:e]) if e <= bs else sum(cnt[s:]) + sum(cnt[: e - bs])
            if cross > free - owed:  # the first step short of blocks: bisect
                eng.free, eng.owed, hist.n = free, owed, hn
                h = PagedEngine.horizon(eng, t, h)
                cross = eng.cross
        k = h - t
        live = k * S + n * (k * t + k * (k - 1) // 2)
        i_live += live
        i_run += n * k
        if defer:
            i_wait += len(waiting) * k
            nxt, queued = eng._defer_arrivals(nxt, now, d, t, h, fits)
            i_wait += queued
        busy += k
        if n > peak:
            peak = n
        if mem_blocked:  # free memory is external fragmentation (integrate())
            hist.n = hn
            opened = weighted(t, k) if k > 1 else 0
            i_ext += k * cap - bs * (k * (usable - free + owed) + opened)
            k_blocked += k
        owed += cross
        now += d + (k - 1) * dt
        t = h
    eng.i_live, eng.i_run, eng.i_wait, eng.busy, eng.peak = i_live, i_run, i_wait, busy, peak
    eng.free, eng.owed, eng.S, eng.extra_time, hist.n = free, owed, S, extra, hn
    eng.lsync += lsync
    eng.query_tokens += query
    eng.i_ext += i_ext + floor * (busy - k_blocked)  # below one block: always waste
    eng.i_resv += i_resv
    eng.i_int += i_int
    eng.i_logical += i_alloc
    eng.i_physical += i_alloc
    eng.admissions += admissions
    eng.completed += completed
    return eng._result(now, time.perf_counter() - wall)
