"""Argument checks shared by every entry point: one message shape, the parameter named.

`bool` is an `int` subclass; `True` as a length is a bug, not a 1, so it is refused.
"""

from __future__ import annotations

from capacity_planner.errors import SettingError

__all__ = ["check_non_negative_int", "check_positive_int"]


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
