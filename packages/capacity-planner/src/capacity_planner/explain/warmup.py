"""vLLM 0.34's post-warm-up sizing lines: recompute each from the ones before it.

With the extensible KV cache (`v1/worker/extensible_kv_cache.py`) a rank logs

    Memory after warmup: F GiB free, C GiB committed to the KV cache, K GiB kept for
    transient activations (P GiB allocated at peak, G GiB of torch reservation growth);
    N KV cache blocks (X GiB) fit within the requested R GiB.

and the engine, after taking the minimum over ranks, "Extended KV cache to M blocks
(Y GiB)". What follows from them:

- K = max(P, G) (`measure_kv_cache_blocks`);
- with "Free memory on device (I/T GiB) on startup" also printed, the non-KV memory is
  `I - F - C` and the cache gets `min(R - (I - F - C), F + C - margin) - K`, margin
  `max(1 GiB, 0.75 P)` (`measure_kv_cache_bytes`); X must not exceed it;
- M <= N: the engine commits the minimum over ranks, never more than a rank measured.
"""

from __future__ import annotations

from capacity_planner.explain.parse import LogRun
from capacity_planner.explain.patterns import Fact
from capacity_planner.explain.types import Check

__all__ = ["warmup_checks"]

_MARGIN_FLOOR_GIB = 1.0
_MARGIN_FRACTION = 0.75


def _f(fact: Fact | None) -> float | None:
    if fact is None or isinstance(fact.value, (str, bool)):
        return None
    return float(fact.value)


def _room(*facts: Fact | None) -> float:
    """Rounding room of a sum of printed values (half a unit of the last digit each)."""
    room = 0.0
    for fact in facts:
        if fact is not None and fact.decimals:
            room += 0.5 * 10.0 ** (-fact.decimals)
    return room + 1e-9


def warmup_checks(run: LogRun) -> list[Check]:
    """Checks for the 0.34 lines of one start-up (empty when it printed none)."""
    free, kept, peak, growth = (
        run.get(k)
        for k in ("warmup_free_gib", "warmup_kept_gib", "warmup_peak_gib", "warmup_growth_gib")
    )
    blocks, blocks_gib = run.get("warmup_blocks"), run.get("warmup_blocks_gib")
    extended = run.get("extended_blocks")
    checks: list[Check] = []
    if kept is not None and peak is not None and growth is not None:
        want = max(_f(peak) or 0.0, _f(growth) or 0.0)
        got = _f(kept) or 0.0
        ok = abs(want - got) <= _room(kept, peak, growth)
        checks.append(
            Check(
                "subtract",
                "kept for transient activations",
                "max(allocated at peak, torch reservation growth)",
                f"{want:.2f} GiB",
                f"{kept.literal} GiB",
                "consistent" if ok else "inconsistent",
                None if ok else "the three figures come from different ranks or lines",
                kept.line_no,
            )
        )
    init = run.get("free_on_startup_gib")
    committed = run.get("warmup_committed_gib")
    requested = run.get("requested_gib")
    values = [_f(x) for x in (init, free, committed, requested, peak, kept, blocks_gib)]
    if all(v is not None for v in values) and blocks_gib is not None:
        i, f, c, r, p, k, x = (v or 0.0 for v in values)
        non_kv = i - f - c
        margin = max(_MARGIN_FLOOR_GIB, _MARGIN_FRACTION * p)
        budget = min(r - non_kv, f + c - margin) - k
        room = _room(init, free, committed, requested, peak, kept)
        ok = x <= budget + room
        checks.append(
            Check(
                "carve",
                "KV cache bytes after warm-up",
                "min(requested - (free at start - free now - committed), "
                "free now + committed - max(1 GiB, 0.75 x peak)) - kept",
                f"<= {budget:.2f} GiB",
                f"{blocks_gib.literal} GiB",
                "consistent" if ok else "inconsistent",
                f"non-KV memory after warm-up: {non_kv:.2f} GiB"
                if ok
                else "more blocks than the measured budget allows: another version's rule",
                blocks_gib.line_no,
            )
        )
    if blocks is not None and extended is not None:
        n, m = int(blocks.value), int(extended.value)
        ok = m <= n
        checks.append(
            Check(
                "carve",
                "extended KV cache blocks",
                "min over ranks of the measured blocks (never above one rank's)",
                f"<= {n}",
                str(m),
                "consistent" if ok else "inconsistent",
                None if ok else "the extension exceeds what this rank measured",
                extended.line_no,
            )
        )
    return checks
