"""Reading one config.json field: aliases, and a clear error naming a bad or missing one."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from capacity_planner.errors import ConfigFieldError

__all__ = ["get_field", "positive_field", "require_int"]


def get_field(cfg: Mapping[str, Any], *names: str, default: Any = None) -> Any:
    for name in names:
        value = cfg.get(name)
        if value is not None:
            return value
    return default


def require_int(cfg: Mapping[str, Any], *names: str, minimum: int = 1) -> int:
    value = get_field(cfg, *names)
    if value is None:
        raise ConfigFieldError(
            names[0], f"config.json is missing {names[0]!r} (needed to size the KV cache)"
        )
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigFieldError(
            names[0], f"config field {names[0]!r} must be an integer >= {minimum}, got {value!r}"
        )
    return value


def positive_field(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigFieldError(
            field, f"config field {field!r} must be an integer >= 1, got {value!r}"
        )
    return value
