"""The report every named experiment returns: rows printed beside their config, and checks."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .metrics import SimResult

__all__ = ["Experiment", "ExperimentReport", "row"]


@dataclass(frozen=True)
class ExperimentReport:
    name: str
    title: str
    rows: list[dict[str, Any]]
    checks: list[tuple[str, bool]]
    notes: list[str] = field(default_factory=list)
    results: dict[str, SimResult] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)  # absent inputs (traces), with the fix

    @property
    def ok(self) -> bool:
        """Every check passed and nothing was left out for lack of input."""
        return all(passed for _, passed in self.checks) and not self.missing

    def render(self) -> str:
        lines = [f"== {self.name}: {self.title}"]
        if self.rows:
            cols = list(self.rows[0])
            cells = [[_fmt(r.get(c)) for c in cols] for r in self.rows]
            widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
            lines.append("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=False)))
            lines += [
                "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=False)) for row in cells
            ]
        lines += [f"[missing] {m}" for m in self.missing]
        lines += [f"[{'ok' if p else 'FAIL'}] {d}" for d, p in self.checks]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"
    return str(v)


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    run: Callable[..., ExperimentReport]


def row(r: SimResult, **extra: Any) -> dict[str, Any]:
    c = r.config
    row: dict[str, Any] = {
        "config": c.label,
        "capacity": c.capacity_tokens,
        "max_len": c.max_model_len,
        "peak_run": r.peak_running,
        "mean_run": round(r.mean_running, 2),
        "preempt": r.preemptions,
        "live/alloc": round(r.token_usage, 3),
    }
    row.update(extra)
    return row
