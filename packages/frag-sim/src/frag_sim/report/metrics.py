"""Results of a run: the per-step time series and the summary, both frozen.

The waste split follows PagedAttention §3.1 / Fig. 2, averaged over busy steps (steps in
which at least one request runs), as shares of KV memory:

- ``token_states``: slots holding a real token's KV;
- ``reservation``: allocated slots the request *will* fill before it finishes;
- ``internal``: allocated slots it never fills (over-provisioning, the paged last block);
- ``external``: slots outside any request's allocation while a request waits (holes the
  allocator cannot hand out, buddy round-up, the remainder below one block), "external
  fragmentation & others" in Fig. 2;
- ``idle``: free slots while nobody waits (not waste: no demand).

The five sum to 1. ``waste_split`` renormalises reservation / internal / external to 1.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ..config import SimConfig

__all__ = ["Breakdown", "SimResult", "Timeseries"]


@dataclass(frozen=True)
class Breakdown:
    token_states: float
    reservation: float
    internal: float
    external: float
    idle: float

    @property
    def waste_split(self) -> dict[str, float]:
        w = self.reservation + self.internal + self.external
        if w <= 0:
            return {"reservation": 0.0, "internal": 0.0, "external": 0.0}
        return {
            "reservation": self.reservation / w,
            "internal": self.internal / w,
            "external": self.external / w,
        }

    def fig2_row(self) -> dict[str, float]:
        """Percent of busy memory as in Fig. 2 (idle memory left out, rows sum to 100)."""
        used = 1.0 - self.idle
        if used <= 0:
            return {"token_states": 0.0, "reservation": 0.0, "internal": 0.0, "external": 0.0}
        return {
            k: 100.0 * getattr(self, k) / used
            for k in ("token_states", "reservation", "internal", "external")
        }


_SPLIT = ("token_states", "reservation", "internal", "external", "idle")


@dataclass(frozen=True, eq=False)
class Timeseries:
    """One sample per scheduler event window ``[step, step + window_steps)``.

    The counters (``running`` ... ``preemptions_total``) are the state during the window's
    first step. The split columns (``token_states`` ... ``idle``, and ``memory``, their
    sum) are integrals over the window in slot-steps, in the categories of
    :class:`Breakdown`; ``memory`` is ``window_steps * capacity_tokens`` plus the slots
    that sharing saved. They are exact (closed forms, no sampling), so summing them over
    the series gives the run's :attr:`SimResult.breakdown` (``total()``), and
    ``shares()`` gives the split of each window, summing to 1.
    """

    step: npt.NDArray[np.int64]
    time_s: npt.NDArray[np.float64]
    running: npt.NDArray[np.int64]
    waiting: npt.NDArray[np.int64]
    live_tokens: npt.NDArray[np.int64]
    allocated_tokens: npt.NDArray[np.int64]
    admitted_total: npt.NDArray[np.int64]
    preemptions_total: npt.NDArray[np.int64]
    window_steps: npt.NDArray[np.int64]
    token_states: npt.NDArray[np.float64]
    reservation: npt.NDArray[np.float64]
    internal: npt.NDArray[np.float64]
    external: npt.NDArray[np.float64]
    idle: npt.NDArray[np.float64]
    memory: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.step)

    def shares(self) -> dict[str, npt.NDArray[np.float64]]:
        """Per window: each category's share of memory (the five sum to 1)."""
        return {k: getattr(self, k) / self.memory for k in _SPLIT}

    def waste_shares(self) -> dict[str, npt.NDArray[np.float64]]:
        """Per window, Fig. 2 style: idle left out, the other four sum to 1 (0 if all idle)."""
        used = self.memory - self.idle
        safe = np.where(used > 0, used, 1.0)
        return {k: np.where(used > 0, getattr(self, k) / safe, 0.0) for k in _SPLIT[:4]}

    def total(self) -> Breakdown:
        """The whole run's split: equals ``SimResult.breakdown`` up to float rounding."""
        mem = float(self.memory.sum())
        return Breakdown(*(float(getattr(self, k).sum()) / mem for k in _SPLIT))

    def to_rows(self) -> list[dict[str, Any]]:
        """One JSON/CSV-ready dict per window, with the shares of memory as ``share.*``."""
        sh = self.shares()
        cols = [f.name for f in dataclasses.fields(self)]
        data = [getattr(self, c).tolist() for c in cols]
        shares = [sh[k].tolist() for k in _SPLIT]
        rows = []
        for j in range(len(self.step)):
            row = {c: d[j] for c, d in zip(cols, data, strict=True)}
            row.update({f"share.{k}": v[j] for k, v in zip(_SPLIT, shares, strict=True)})
            rows.append(row)
        return rows


@dataclass(frozen=True, eq=False)
class SimResult:
    config: SimConfig
    workload: str
    num_requests: int
    completed: int
    rejected: tuple[tuple[int, str], ...]  # (request index, reason)
    admissions: int  # including re-admissions after preemption
    preemptions: int
    peak_running: int
    mean_running: float
    mean_waiting: float
    busy_steps: int
    sim_time_s: float
    breakdown: Breakdown
    token_usage: float  # live / allocated, averaged over busy steps
    prefix_hit_rate: float  # hit tokens / prompt tokens looked up (0 without caching)
    sharing_saved: float  # (logical - physical) / logical allocated slots
    mean_latency_s: float  # arrival -> completion
    wall_s: float
    timeseries: Timeseries | None
    cow_copies: int = 0  # block copies queued by copy-on-write (sequence groups)
    cpu_hit_rate: float = 0.0  # the part of prefix_hit_rate loaded from the CPU tier

    def summary(self) -> dict[str, Any]:
        """Flat, JSON-ready summary (no time series)."""
        cfg = {f"config.{k}": v for k, v in self.config.to_dict().items()}
        out: dict[str, Any] = {
            "label": self.config.label,
            "workload": self.workload,
            "num_requests": self.num_requests,
            "completed": self.completed,
            "rejected": len(self.rejected),
            "admissions": self.admissions,
            "preemptions": self.preemptions,
            "peak_running": self.peak_running,
            "mean_running": self.mean_running,
            "mean_waiting": self.mean_waiting,
            "busy_steps": self.busy_steps,
            "sim_time_s": self.sim_time_s,
            "token_usage": self.token_usage,
            "prefix_hit_rate": self.prefix_hit_rate,
            "cpu_hit_rate": self.cpu_hit_rate,
            "sharing_saved": self.sharing_saved,
            "cow_copies": self.cow_copies,
            "mean_latency_s": self.mean_latency_s,
            "wall_s": self.wall_s,
        }
        out.update({f"share.{k}": v for k, v in dataclasses.asdict(self.breakdown).items()})
        out.update({f"waste.{k}": v for k, v in self.breakdown.waste_split.items()})
        out.update(cfg)
        return out
