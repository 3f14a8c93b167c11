"""Exceptions of the capacity planner: one base class, one subclass per kind of bad input.

Every error names the parameter (or config field) at fault and what would be accepted,
so the CLI can print it as a single line and exit with status 2.
"""

from __future__ import annotations

__all__ = [
    "CapacityPlannerError",
    "ConfigFieldError",
    "ParallelConfigError",
    "SettingError",
    "UnknownGPUError",
    "UnknownModelError",
    "UnsupportedModelError",
]


class CapacityPlannerError(Exception):
    """Base class of every error raised by `capacity_planner` on bad input."""


class SettingError(CapacityPlannerError, ValueError):
    """A vLLM setting is out of range (utilisation outside (0, 1], length <= 0, ...)."""


class ConfigFieldError(CapacityPlannerError, ValueError):
    """A model config lacks a field the planner needs, or holds an unusable value."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


class UnknownGPUError(CapacityPlannerError, LookupError):
    """A GPU name that is neither in the catalog nor a memory size."""

    def __init__(self, name: str, suggestions: tuple[str, ...]) -> None:
        self.name = name
        self.suggestions = suggestions
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(
            f"unknown GPU {name!r}{hint} (or give a memory size such as '80GiB'; "
            "`capacity-planner gpus` lists the catalog)"
        )


class UnknownModelError(CapacityPlannerError, LookupError):
    """A model name that is neither in the built-in catalog nor a config.json path."""

    def __init__(self, name: str, suggestions: tuple[str, ...]) -> None:
        self.name = name
        self.suggestions = suggestions
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(
            f"unknown model {name!r}{hint} (give a catalog name or a path to a Hugging Face "
            "config.json; `capacity-planner models` lists the catalog)"
        )


class ParallelConfigError(CapacityPlannerError, ValueError):
    """A tensor/pipeline-parallel size that does not divide the model."""


class UnsupportedModelError(CapacityPlannerError, ValueError):
    """A layer mix the modelled vLLM version cannot carve (vLLM raises too)."""
