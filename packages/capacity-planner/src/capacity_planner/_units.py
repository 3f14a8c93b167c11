"""Byte units and size parsing shared by the CLI, the catalogs and the reports.

vLLM prints memory in GiB (2**30 bytes) even where its log says "GB"; so do we.
"""

from __future__ import annotations

import re

from capacity_planner.errors import SettingError

GiB = 1 << 30
MiB = 1 << 20

_SIZE_RE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*$")
_SUFFIX: dict[str, int] = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kb": 10**3,
    "kib": 1 << 10,
    "m": MiB,
    "mb": 10**6,
    "mib": MiB,
    "g": GiB,
    "gb": 10**9,
    "gib": GiB,
    "t": 1 << 40,
    "tb": 10**12,
    "tib": 1 << 40,
}


def parse_size(text: str, *, parameter: str) -> int:
    """Bytes from '80GiB', '24GB', '17.5G' (binary), '1073741824' (bytes)."""
    match = _SIZE_RE.match(text)
    if match is None or match.group(2).lower() not in _SUFFIX:
        raise SettingError(
            f"{parameter}: cannot read {text!r} as a memory size; use bytes or a number with "
            "a unit such as 80GiB, 24GB or 17.5G"
        )
    value = float(match.group(1)) * _SUFFIX[match.group(2).lower()]
    if value <= 0:
        raise SettingError(f"{parameter} must be > 0 bytes, got {text!r}")
    return int(value)


def gib(num_bytes: int | float) -> float:
    """Bytes -> GiB as a float."""
    return num_bytes / GiB


def fmt_gib(num_bytes: int | float) -> str:
    """vLLM's '%.2f GiB'."""
    return f"{num_bytes / GiB:.2f} GiB"


def logged_gib_bounds(value: float, decimals: int = 2) -> tuple[int, int]:
    """Byte interval [lo, hi) that a value printed as '%.{decimals}f GiB' stands for."""
    half = 0.5 * 10.0**-decimals
    lo = max(0, round((value - half) * GiB))
    hi = round((value + half) * GiB)
    return lo, hi
