"""The paged policy's hot path: one sequence per request, no prefix caching.

This is the configuration the speed targets are measured on, so ``SingleSeqPagedEngine``
inlines the hooks that run once per request or per event (admission, release,
block-demand check, horizon, window) of :class:`~frag_sim.engine.paged.PagedEngine`: the same
steps, the same real ``BlockPool`` calls, without the branches for sequence groups and
prefix caching. Only this engine takes blocks from its pool, so it mirrors the pool's
free count (``free``) instead of asking it once per event. Without a time series (and
unless ``SimConfig.use_block_pool``) its ``run`` is ``paged_loop.run_single_seq``, the
event loop with these hooks written out over counted blocks.
The token-by-token reference test runs through it (``simulate`` picks it), and the
general engine is tested on the same configurations directly.
"""

from __future__ import annotations

from ..config import SimConfig
from ..report.metrics import SimResult
from ..workload.requests import Workload
from ..workload.stream import RequestStream
from .base import Window
from .paged import PagedEngine
from .paged_loop import run_single_seq

__all__ = ["SingleSeqPagedEngine"]


class SingleSeqPagedEngine(PagedEngine):
    """``PagedEngine`` for ``n == 1`` without prefix caching (blocks from ``BlockPool``)."""

    def __init__(self, workload: Workload | RequestStream, config: SimConfig) -> None:
        super().__init__(workload, config)
        # only this engine takes blocks from its pool, so it mirrors the free count
        # instead of asking the pool once per event
        self.free = self.pool.get_num_free_blocks()
        # free memory below one block: waste in every window (sub-block remainder)
        self.floor = config.capacity_tokens - self.usable * self.bs

    def avail(self) -> int:
        return self.free - self.owed

    def sync(self, i: int, upto: int) -> None:
        c = self.tokens(i, upto)
        syn, bs = self.syn[i], self.bs
        if c <= syn:
            return
        grow = -(-c // bs) - -(-syn // bs)
        if grow:
            self.tables[i] += self.pool.get_new_blocks(grow)
            self.free -= grow
            self.owed -= grow
            self.lsync += grow
        self.syn[i] = c

    def try_admit(self, i: int, t: int) -> bool:
        p, e, bs = self.P[i], self.emitted[i], self.bs
        c = p + e + 1
        nb = -(-c // bs)
        if nb > self.free - self.owed:
            return False
        self.tables[i] = self.pool.get_new_blocks(nb)
        self.free -= nb
        self.syn[i] = c
        self.lsync += nb
        self.phase[i] = ph = (t - p - e) % bs
        hist = self.hist
        hist.cnt[ph] += 1
        hist.pc[ph] += ph
        hist.n += 1
        cfg = self.cfg
        if not e:
            self.query_tokens += p
        if e and cfg.preemption == "swap":
            self.extra_time += -(-(p + e) // bs) * cfg.swap_time_per_block_s
        else:
            self.extra_time += (p + e) * cfg.prefill_time_per_token_s
        if self.ts is not None:
            self._track_last_block(i, t)
        return True

    def pressure(self, t: int) -> bool:
        need = self.hist.cnt[t % self.bs]
        if not need:
            return False
        if need <= self.free - self.owed:
            self.owed += need
            return False
        return super().pressure(t)  # preemption: the general path

    def horizon(self, t: int, h: int) -> int:
        # PagedEngine.horizon's common case (the window's crossings fit), inlined
        m = h - t - 1
        if m <= 0:
            self.cross = 0
            return h
        hist, bs = self.hist, self.bs
        full, rem = divmod(m, bs)
        cross = hist.n * full
        if rem:
            s = (t + 1) % bs
            e = s + rem
            cnt = hist.cnt
            cross += sum(cnt[s:e]) if e <= bs else sum(cnt[s:]) + sum(cnt[: e - bs])
        if cross > self.free - self.owed:
            return super().horizon(t, h)  # the first step short of blocks: bisect
        self.cross = cross
        return h

    def integrate(self, t: int, k: int, live: int, waiting: bool) -> Window | None:
        if waiting or self.ts is not None:
            return super().integrate(t, k, live, waiting)
        self.i_ext += k * self.floor
        self.owed += self.cross
        return None

    def release(self, i: int, t: int, preempted: bool) -> None:
        bs, f = self.bs, self.F[i]
        c0 = self.P[i] + self.emitted[i] + 1
        c1 = c0 + t - 1 - self.t0[i]  # tokens during the last step it ran
        syn = self.syn[i]
        blocks = self.tables.pop(i)
        self.free += len(blocks)  # the owed ones below come and go within this call
        grow = -(-c1 // bs) - -(-syn // bs)
        if grow:  # blocks it crossed into but still owed: allocate them for real first
            blocks += self.pool.get_new_blocks(grow)
            self.owed -= grow
        self.lsync -= -(-syn // bs)
        n = c1 - c0 + 1
        q1, r1 = divmod(c1, bs)
        q0, r0 = divmod(c0 - 1, bs)
        alloc = bs * (bs * (q1 * (q1 + 1) - q0 * (q0 + 1)) // 2 + r1 * (q1 + 1) - r0 * (q0 + 1))
        live = n * c0 + n * (n - 1) // 2
        nb_f = -(-f // bs)
        last = c1 - max(c0, bs * (nb_f - 1) + 1) + 1
        internal = last * (bs * nb_f - f) if last > 0 else 0
        self.i_resv += alloc - live - internal
        self.i_int += internal
        self.i_logical += alloc
        self.i_physical += alloc
        blocks.reverse()  # tail first, as KVCacheManager.free does
        self.pool.free_blocks(blocks)
        ph = self.phase[i]
        hist = self.hist
        hist.cnt[ph] -= 1
        hist.pc[ph] -= ph
        hist.n -= 1
        self.syn[i] = 0
        if self.ts is not None:
            self.slack.leave(i)
        if preempted and self.cfg.preemption == "swap":
            self.extra_time += -(-c1 // bs) * self.cfg.swap_time_per_block_s

    def run(self) -> SimResult:
        if self.ts is not None or self.cfg.use_block_pool:
            return super().run()  # the general loop over the hooks above, real BlockPool
        return run_single_seq(self)
