"""The paged KV memory as the event loop sees it: state, block counts, window integrals.

``PagedMemory`` holds what every paged allocation path shares (PagedAttention §4): the
real ``KVCacheManager`` and its ``BlockPool``, the blocks the running sequences have
crossed into but not yet taken from the pool (``owed``), and the ``PhaseHistogram`` of
their block-boundary phases. From those it answers the engine's event-jumping questions
in closed form: which requests can ever fit, how far the next window may reach before
block demand exceeds the free blocks (``horizon``), and the window's physical, external
and (with a time series) logical and internal slot-steps (``integrate``). How a request
takes and gives back its blocks is :class:`~frag_sim.engine.paged.PagedEngine`'s business.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..config import SimConfig
from ..workload.requests import Workload
from ..workload.stream import RequestStream
from .base import Engine, Window
from .groups import SequenceGroups
from .kv import (
    KVCacheBlock,
    KVCacheManager,
    OffloadingKVCacheManager,
    SimRequest,
    make_manager,
    make_offloading_manager,
)
from .phases import PhaseHistogram, SlackTracker

__all__ = ["PagedMemory"]


class PagedMemory(Engine):
    """Paged memory state and its closed-form window integrals (no allocation paths)."""

    kv_events = False  # the pool records KV-cache events (frag_sim.report.events)

    def __init__(self, workload: Workload | RequestStream, config: SimConfig) -> None:
        super().__init__(workload, config)
        self.bs = bs = config.block_size
        self.usable = config.num_gpu_blocks
        self.caching = config.enable_prefix_caching
        cpu_blocks = config.cpu_cache_tokens // bs
        self.kvm: KVCacheManager | OffloadingKVCacheManager = (
            make_offloading_manager(self.usable, bs, cpu_blocks, self.kv_events)
            if cpu_blocks
            else make_manager(self.usable, bs, self.caching, self.kv_events)
        )
        self.pool = self.kvm.block_pool
        self.beam = config.use_beam_search
        # prefix caching and beams share blocks in ways only the pool knows: integrate the
        # physical blocks per window; otherwise release() knows them in closed form
        self.phys_by_window = self.caching or self.beam
        self.defer_arrivals = not self.caching
        self.groups = None
        if config.n > 1:  # SimConfig keeps groups off the offloading manager
            assert isinstance(self.kvm, KVCacheManager)
            self.groups = SequenceGroups(self.kvm, config.n, self.caching, config.seed)
        self.reqs: dict[int, SimRequest] = {}  # one sequence, prefix caching on
        self.tables: dict[int, list[KVCacheBlock]] = {}  # one sequence, no prefix caching
        self.parents: dict[int, SimRequest] = {}  # looked-up group prompts not yet admitted
        self.syn: dict[int, int] = {}  # tokens allocated in the manager (its computed tokens)
        self.phase: dict[int, int] = {}
        self.hist = PhaseHistogram(bs)  # running requests per boundary phase (not beams)
        self.owed = 0  # blocks crossed but not yet allocated in the manager
        self.cross = 0
        self.lsync = 0  # blocks the running sequences hold as if unshared, as synced
        self.hit_tokens = 0
        self.cpu_hit_tokens = 0  # the part of hit_tokens loaded from the CPU tier
        self.hits_by_request: dict[int, int] | None = None  # set to a dict to record them
        self.query_tokens = 0
        # time series only: exact internal fragmentation per window
        self.slack = SlackTracker()

    # -- block accounting ---------------------------------------------------------------
    def shared_blocks(self, i: int) -> int:
        """Full prompt blocks the sequences of request ``i`` share (0 for one sequence)."""
        return self.P[i] // self.bs if self.ns > 1 else 0

    def group_blocks(self, i: int, c: int) -> int:
        """Physical blocks request ``i`` holds with ``c`` tokens in every sequence (at most,
        for beams: their shared tree is smaller)."""
        sh = self.shared_blocks(i)
        return sh + self.ns * (-(-c // self.bs) - sh)

    def avail(self) -> int:
        return self.pool.get_num_free_blocks() - self.owed

    def tokens(self, i: int, t: int) -> int:
        """Tokens every sequence of running request ``i`` holds during step ``t``."""
        return self.P[i] + self.emitted[i] + 1 + t - self.t0[i]

    # -- window hooks (event jumping) ---------------------------------------------------
    def chunk_fits(self, p: npt.NDArray[np.int64], o: npt.NDArray[np.int64]) -> list[bool]:
        bs, ns = self.bs, self.ns
        f = p + o
        sh = p // bs if ns > 1 else 0
        need = sh + ns * (-(-f // bs) - sh)
        ok = (f <= self.cfg.max_model_len) & (need <= self.usable)
        return ok.tolist()  # type: ignore[no-any-return]

    def forget(self, i: int) -> None:
        super().forget(i)
        self.syn.pop(i, None)
        self.phase.pop(i, None)

    def why_not(self, p: int, o: int) -> str | None:
        sh = p // self.bs if self.ns > 1 else 0
        need = sh + self.ns * (-(-(p + o) // self.bs) - sh)
        if need <= self.usable:
            return None
        return f"needs {need} blocks of {self.bs} tokens, the pool has {self.usable}"

    def horizon(self, t: int, h: int) -> int:
        if self.beam:  # beam groups re-fork every step
            h = t + 1
        a = t + 1
        cross = self.hist.crossings(a, h) * self.ns
        avail = self.avail()
        if cross > avail:  # the first step whose demand exceeds the free blocks
            lo, hi = a, h - 1
            while lo < hi:
                mid = (lo + hi) // 2
                if self.hist.crossings(a, mid + 1) * self.ns > avail:
                    hi = mid
                else:
                    lo = mid + 1
            h = lo
            cross = self.hist.crossings(a, h) * self.ns
        self.cross = cross
        return h

    def integrate(self, t: int, k: int, live: int, waiting: bool) -> Window | None:
        bs, cap = self.bs, self.cfg.capacity_tokens
        recording = self.ts is not None
        if not (waiting or recording or self.phys_by_window):
            # physical blocks come from release(); free memory below one block is waste
            self.i_ext += k * (cap - self.usable * bs)
            self.owed += self.cross
            return None
        phys = self.usable - self.pool.get_num_free_blocks() + self.owed
        # blocks opened inside the window, each held for the rest of it (exact)
        opened = self.ns * self.hist.weighted(t, k) if k > 1 else 0
        phys_w = bs * (k * phys + opened)
        if self.phys_by_window:
            self.i_physical += phys_w
        # free memory: waste while the queue head waits for it; below one block, always
        ext = k * cap - phys_w if waiting else k * (cap - self.usable * bs)
        self.i_ext += ext
        win = None
        if recording:
            logical = bs * (k * (self.lsync + self.owed) + opened)
            internal = self.slack.window(t, k, self.epoch)
            win = (logical - live - internal, internal, ext, phys_w, logical)
        self.owed += self.cross
        return win

    def allocated_tokens(self) -> int:
        return (self.usable - self.pool.get_num_free_blocks() + self.owed) * self.bs

    def extras(self) -> dict[str, float]:
        q = self.query_tokens
        return {
            "prefix_hit_rate": self.hit_tokens / q if q else 0.0,
            "cpu_hit_rate": self.cpu_hit_tokens / q if q else 0.0,
            "cow_copies": self.groups.copies if self.groups is not None else 0,
        }
