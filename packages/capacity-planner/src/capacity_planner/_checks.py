"""Argument checks shared by every entry point: one message shape, the parameter named.

`bool` is an `int` subclass; `True` as a length is a bug, not a 1, so it is refused.
"""

from __future__ import annotations

from capacity_planner.errors import SettingError

__all__ = [
    "check_fraction",
    "check_int_at_least",
    "check_non_negative_int",
    "check_positive_int",
]


def check_positive_int(name: str, value: object) -> int:
    """`value` if it is an int >= 1, else a `SettingError` naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingError(f"{name} must be a positive integer, got {value!r}")
    if value <= 0:
        raise SettingError(f"{name} must be a positive integer, got {value}")
    return value


def check_non_negative_int(name: str, value: object) -> int:
    """`value` if it is an int >= 0, else a `SettingError` naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SettingError(f"{name} must be a non-negative integer, got {value!r}")
    return value


def check_int_at_least(name: str, value: object, minimum: int) -> int:
    """`value` if it is an int >= `minimum`, else a `SettingError` naming `name`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise SettingError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_fraction(name: str, value: object) -> float:
    """`value` if it is a number in (0, 1] (a memory fraction), else a `SettingError`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < value <= 1.0:
        raise SettingError(f"{name} must be in (0, 1], got {value!r}")
    return float(value)
