"""Helpers of the command line: config files, table printing, output files, progress."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from ..engine import simulator
from ..errors import FragSimError
from ..report.io import write_csv, write_json
from ..report.metrics import SimResult

# tqdm ships no type hints; the few calls below are checked by the tests
tqdm: Any = importlib.import_module("tqdm").tqdm

__all__ = [
    "Formatter",
    "Progress",
    "csv_ints",
    "load_config",
    "print_table",
    "run_progress",
    "table_stream",
    "write_outputs",
]


class Formatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows each default; a flag whose default depends on the workload (None
    here, resolved later) says so in its own help text instead of "(default: None)"."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or isinstance(action.default, bool):
            return text
        return super()._get_help_string(action) or text


class Progress:
    """Progress on stderr through tqdm: a bar on a terminal, else one line per step.

    Nothing shows for the first ``delay`` seconds, so quick commands stay quiet.
    """

    delay = 2.0

    def __init__(self, desc: str, total: int | None, unit: str = "run") -> None:
        self.desc, self.total, self.unit = desc, total, unit
        self.tty = sys.stderr.isatty()
        self.n = 0
        self.start = time.perf_counter()
        self.bar = tqdm(
            total=total,
            desc=desc,
            unit=unit,
            file=sys.stderr,
            leave=False,
            disable=not self.tty,
            delay=self.delay,
        )
        self._last_line = 0.0

    def step(self, what: str) -> None:
        """One finished step (a run): a bar tick, or one line when not on a terminal."""
        self.n += 1
        if self.tty:
            self.bar.set_postfix_str(what[:40], refresh=False)
            self.bar.update(1)
            return
        elapsed = time.perf_counter() - self.start
        if elapsed < self.delay:
            return
        meter = tqdm.format_meter(self.n, self.total, elapsed, prefix=self.desc, unit=self.unit)
        print(f"{meter} {what}", file=sys.stderr, flush=True)

    def advance(self, amount: int) -> None:
        """Bytes or items inside one step: a bar on a terminal, a line every 2 s otherwise."""
        self.n += amount
        if self.tty:
            self.bar.update(amount)
            return
        now = time.perf_counter()
        if now - self.start < self.delay:
            return
        if now - self._last_line >= 2.0 or (self.total is not None and self.n >= self.total):
            self._last_line = now
            meter = tqdm.format_meter(
                self.n, self.total, now - self.start, prefix=self.desc, unit=self.unit,
                unit_scale=self.unit == "B",
            )  # fmt: skip
            print(meter, file=sys.stderr, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.bar.close()


@contextlib.contextmanager
def run_progress(desc: str, total: int | None) -> Iterator[Progress]:
    """Report every ``simulate()`` run that finishes inside the block as one step."""
    with Progress(desc, total) as bar:

        def seen(r: SimResult) -> None:
            bar.step(f"{r.config.label} on {r.workload}: {r.num_requests:,} requests, "
                     f"{r.wall_s:.2f} s")  # fmt: skip

        simulator.OBSERVERS.append(seen)
        try:
            yield bar
        finally:
            simulator.OBSERVERS.remove(seen)


def table_stream(a: argparse.Namespace) -> IO[str]:
    """The table goes to stderr when stdout carries ``--json -`` or ``--csv -``."""
    if getattr(a, "json_out", None) == "-" or getattr(a, "csv_out", None) == "-":
        return sys.stderr
    return sys.stdout


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
    "cpu_hit_rate",
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


def csv_ints(text: str, what: str, low: int = 1) -> list[int]:
    try:
        vals = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise FragSimError(f"{what} must be comma-separated integers, got {text!r}") from None
    if not vals or min(vals) < low:
        raise FragSimError(f"{what} must be integers >= {low}, got {text!r}")
    return vals


def print_table(rows: Sequence[dict[str, Any]], file: IO[str] | None = None) -> None:
    cols = [c for c in _SUMMARY_COLS if any(c in r for r in rows)]

    def fmt(v: Any) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    cells = [[fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(x[i]) for x in cells)) for i, c in enumerate(cols)]
    out = file or sys.stdout
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=False)), file=out)
    for x in cells:
        print("  ".join(v.ljust(w) for v, w in zip(x, widths, strict=False)), file=out)


def write_outputs(a: argparse.Namespace, rows: list[dict[str, Any]], extra: Any = None) -> None:
    if a.json_out:
        write_json(a.json_out, extra if extra is not None else rows)
    if a.csv_out:
        write_csv(a.csv_out, rows)
