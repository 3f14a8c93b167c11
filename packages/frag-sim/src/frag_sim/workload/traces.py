"""Real trace loaders: Azure LLM inference 2023 CSV, Mooncake FAST'25 JSONL, generic CSV.

Azure rows are ``TIMESTAMP,ContextTokens,GeneratedTokens`` (Patel et al., Splitwise, ISCA
2024; the upstream ``AzureLLMInferenceDataset2023.md``); Mooncake rows are
``{"timestamp": ms, "input_length", "output_length", "hash_ids"}`` with 512-token prefix
blocks (Qin et al., Mooncake, FAST 2025; the upstream ``FAST25-release/README.md``). No
trace ships with this package: ``frag-sim traces fetch NAME`` downloads one (see
:mod:`frag_sim.workload.catalog`), and the folder is ``--trace-dir``, ``$FRAG_SIM_TRACE_DIR`` or the
user data folder. Every malformed row raises :class:`TraceFormatError` naming the file
and line.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping
from datetime import date
from pathlib import Path

import numpy as np

from ..errors import ConfigError, EmptyTraceError, TraceFormatError
from .catalog import CATALOG, TraceNotFoundError, resolve_trace_dir
from .requests import Workload

__all__ = [
    "TRACE_FILES",
    "default_trace_dir",
    "load_azure_csv",
    "load_csv",
    "load_mooncake_jsonl",
    "load_trace",
    "trace_path",
]

TRACE_FILES: dict[str, str] = {name: info.file for name, info in CATALOG.items()}

_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6}


def default_trace_dir() -> Path | None:
    """The trace folder (``$FRAG_SIM_TRACE_DIR`` or the user data one) if it exists."""
    d = resolve_trace_dir()
    return d if d.is_dir() else None


def trace_path(name: str, trace_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where catalogued trace ``name`` lives; :class:`TraceNotFoundError` (with the fetch
    command) when it is not there."""
    base = resolve_trace_dir(trace_dir)
    path = base / TRACE_FILES[name]
    if not path.is_file():
        raise TraceNotFoundError(name, base)
    return path


def load_trace(name: str, trace_dir: str | os.PathLike[str] | None = None) -> Workload:
    """Load one of :data:`TRACE_FILES` by short name (or any path to a .csv / .jsonl)."""
    if name in TRACE_FILES:
        path = trace_path(name, trace_dir)
    else:
        path = Path(name)
        if not path.is_file():
            raise ConfigError(
                f"unknown trace {name!r}: not a file and not one of {sorted(TRACE_FILES)}"
            )
    if path.suffix == ".jsonl":
        return load_mooncake_jsonl(path)
    return load_azure_csv(path)


def _int_field(path: str, line: int, raw: object, column: str) -> int:
    try:
        if isinstance(raw, bool):
            raise ValueError
        value = int(raw) if isinstance(raw, int) else int(str(raw).strip())
    except (TypeError, ValueError):
        raise TraceFormatError(path, line, f"{column} must be an integer, got {raw!r}") from None
    if value < 1:
        raise TraceFormatError(path, line, f"{column} must be >= 1, got {value}")
    return value


def _azure_seconds(path: str, line: int, stamp: str, days: dict[str, int]) -> float:
    # "2023-11-16 18:17:03.9799600": 7 fractional digits, which datetime cannot parse.
    try:
        day, clock = stamp.strip().split(" ")
        if day not in days:
            days[day] = date.fromisoformat(day).toordinal()
        hh, mm, ss = clock.split(":")
        return days[day] * 86400.0 + int(hh) * 3600 + int(mm) * 60 + float(ss)
    except ValueError:
        raise TraceFormatError(
            path, line, f"TIMESTAMP must look like 'YYYY-MM-DD HH:MM:SS.fffffff', got {stamp!r}"
        ) from None


def load_azure_csv(path: str | os.PathLike[str]) -> Workload:
    """Azure LLM inference 2023 CSV (``TIMESTAMP,ContextTokens,GeneratedTokens``)."""
    return load_csv(
        path,
        {"arrival": "TIMESTAMP", "prompt_len": "ContextTokens", "output_len": "GeneratedTokens"},
        arrival_unit="datetime",
        source="azure2023",
    )


def load_csv(
    path: str | os.PathLike[str],
    columns: Mapping[str, str],
    *,
    arrival_unit: str = "s",
    source: str = "csv",
) -> Workload:
    """A CSV with a header; ``columns`` maps ``arrival``/``prompt_len``/``output_len`` to
    column names. ``arrival_unit``: ``s``, ``ms``, ``us`` (numbers) or ``datetime``
    (Azure-style ``YYYY-MM-DD HH:MM:SS.f``). Rows are sorted stably by arrival."""
    p = str(path)
    need = {"arrival", "prompt_len", "output_len"}
    if set(columns) != need:
        raise ConfigError(f"columns must map exactly {sorted(need)}, got {sorted(columns)}")
    if arrival_unit not in (*_UNITS, "datetime"):
        raise ConfigError(f"arrival_unit must be one of s, ms, us, datetime; got {arrival_unit!r}")
    arrivals: list[float] = []
    prompts: list[int] = []
    outputs: list[int] = []
    days: dict[str, int] = {}
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise EmptyTraceError(f"{p}: empty file (no header)")
        header = [h.strip() for h in header]
        missing = [c for c in columns.values() if c not in header]
        if missing:
            raise TraceFormatError(p, 1, f"unknown column(s) {missing}; the header has {header}")
        ia, ip, io = (header.index(columns[k]) for k in ("arrival", "prompt_len", "output_len"))
        width = len(header)
        scale = _UNITS.get(arrival_unit, 1.0)
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != width:
                raise TraceFormatError(p, line, f"expected {width} fields, got {len(row)}")
            if arrival_unit == "datetime":
                t = _azure_seconds(p, line, row[ia], days)
            else:
                try:
                    t = float(row[ia]) * scale
                except ValueError:
                    raise TraceFormatError(
                        p, line, f"{columns['arrival']} must be a number, got {row[ia]!r}"
                    ) from None
                if not (t >= 0 and np.isfinite(t)):
                    raise TraceFormatError(p, line, f"arrival must be finite and >= 0, got {t}")
            arrivals.append(t)
            prompts.append(_int_field(p, line, row[ip], columns["prompt_len"]))
            outputs.append(_int_field(p, line, row[io], columns["output_len"]))
    if not arrivals:
        raise EmptyTraceError(f"{p}: no request rows after the header")
    return _build(Path(p).stem, arrivals, prompts, outputs, None, source)


def load_mooncake_jsonl(path: str | os.PathLike[str]) -> Workload:
    """Mooncake FAST'25 JSONL; ``hash_ids`` become the workload's 512-token prefix blocks."""
    p = str(path)
    arrivals: list[float] = []
    prompts: list[int] = []
    outputs: list[int] = []
    hashes: list[tuple[int, ...]] = []
    with open(path, encoding="utf-8") as fh:
        for line, text in enumerate(fh, start=1):
            if not text.strip():
                continue
            t, n_in, n_out, ids = parse_mooncake_line(p, line, text)
            arrivals.append(t)
            prompts.append(n_in)
            outputs.append(n_out)
            hashes.append(ids)
    if not arrivals:
        raise EmptyTraceError(f"{p}: no request rows")
    return _build(Path(p).stem, arrivals, prompts, outputs, hashes, "mooncake_fast25")


def parse_mooncake_line(path: str, line: int, text: str) -> tuple[float, int, int, tuple[int, ...]]:
    """One Mooncake JSONL row: (arrival s, input tokens, output tokens, hash_ids)."""
    try:
        row = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TraceFormatError(path, line, f"invalid JSON: {exc.msg}") from None
    if not isinstance(row, dict):
        raise TraceFormatError(path, line, "each line must be a JSON object")
    for key in ("timestamp", "input_length", "output_length"):
        if key not in row:
            raise TraceFormatError(path, line, f"missing field {key!r}")
    ts = row["timestamp"]
    if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not ts >= 0:
        raise TraceFormatError(path, line, f"timestamp must be a number >= 0, got {ts!r}")
    n_in = _int_field(path, line, row["input_length"], "input_length")
    n_out = _int_field(path, line, row["output_length"], "output_length")
    ids = row.get("hash_ids", [])
    if not isinstance(ids, list) or not all(
        isinstance(h, int) and not isinstance(h, bool) for h in ids
    ):
        raise TraceFormatError(path, line, "hash_ids must be a list of integers")
    if len(ids) != -(-n_in // 512):
        raise TraceFormatError(
            path, line, f"hash_ids has {len(ids)} ids, expected ceil({n_in}/512)"
        )
    return float(ts) / 1000.0, n_in, n_out, tuple(ids)


_AZURE = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")


def azure_columns(path: str, header: list[str] | None) -> tuple[int, int, int, int]:
    """Indices of the Azure columns in ``header``, and the row width."""
    if header is None:
        raise EmptyTraceError(f"{path}: empty file (no header)")
    names = [h.strip() for h in header]
    missing = [c for c in _AZURE if c not in names]
    if missing:
        raise TraceFormatError(path, 1, f"unknown column(s) {missing}; the header has {names}")
    ia, ip, io = (names.index(c) for c in _AZURE)
    return ia, ip, io, len(names)


def parse_azure_row(
    path: str, line: int, cols: tuple[int, int, int, int], row: list[str], days: dict[str, int]
) -> tuple[float, int, int]:
    """One Azure 2023 CSV row: (arrival s, prompt tokens, output tokens)."""
    ia, ip, io, width = cols
    if len(row) != width:
        raise TraceFormatError(path, line, f"expected {width} fields, got {len(row)}")
    return (
        _azure_seconds(path, line, row[ia], days),
        _int_field(path, line, row[ip], _AZURE[1]),
        _int_field(path, line, row[io], _AZURE[2]),
    )


def _build(
    name: str,
    arrivals: list[float],
    prompts: list[int],
    outputs: list[int],
    hashes: list[tuple[int, ...]] | None,
    source: str,
) -> Workload:
    t = np.asarray(arrivals, dtype=np.float64)
    order = np.argsort(t, kind="stable")
    t = t[order] - t[order[0]]
    hs = None if hashes is None else tuple(hashes[i] for i in order)
    return Workload(
        name,
        t,
        np.asarray(prompts, dtype=np.int64)[order],
        np.asarray(outputs, dtype=np.int64)[order],
        hs,
        512,
        0,
        source,
    )
