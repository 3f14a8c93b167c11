"""Helpers of the command line: config files, table printing, output files, progress."""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._io import write_csv, write_json
from .errors import FragSimError

__all__ = ["csv_ints", "load_config", "print_table", "progress", "write_outputs"]

_SUMMARY_COLS = (
    "label",
    "workload",
    "completed",
    "rejected",
    "peak_running",
    "mean_running",
    "preemptions",
    "token_usage",
    "share.token_states",
    "share.reservation",
    "share.internal",
    "share.external",
    "prefix_hit_rate",
    "wall_s",
)


def load_config(path: str | None) -> dict[str, Any]:
    if not path:
        return {}
    p = Path(path)
    if not p.is_file():
        raise FragSimError(f"config file {path} not found")
    if p.suffix == ".json":
        data = json.loads(p.read_text())
    elif p.suffix == ".toml":
        # tomllib is 3.11+; the tomli backport (a 3.10-only dependency) has the same API
        toml = importlib.import_module("tomllib" if sys.version_info >= (3, 11) else "tomli")
        data = toml.loads(p.read_text())
    else:
        raise FragSimError(f"config file must be .toml or .json, got {path}")
    unknown = sorted(set(data) - {"workload", "sim", "sweep"})
    if unknown:
        raise FragSimError(f"{path}: unknown section(s) {unknown}; known: workload, sim, sweep")
    return dict(data)


def csv_ints(text: str, what: str) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise FragSimError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not vals or min(vals) < 1:
        raise FragSimError(f"{what} must be integers >= 1, got {text!r}")
    return vals


def print_table(rows: Sequence[dict[str, Any]]) -> None:
    cols = [c for c in _SUMMARY_COLS if any(c in r for r in rows)]

    def fmt(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    cells = [[fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=False)))
    for x in cells:
        print("  ".join(v.ljust(w) for v, w in zip(x, widths, strict=False)))


def write_outputs(a: argparse.Namespace, rows: list[dict[str, Any]], extra: Any = None) -> None:
    if a.json_out:
        write_json(a.json_out, extra if extra is not None else rows)
    if a.csv_out:
        write_csv(a.csv_out, rows)


def progress() -> Any:
    if not sys.stderr.isatty():
        return None
    start = time.perf_counter()

    def show(done: int, total: int) -> None:
        el = time.perf_counter() - start
        sys.stderr.write(f"\r[{done}/{total}] {el:6.1f}s")
        if done == total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show
