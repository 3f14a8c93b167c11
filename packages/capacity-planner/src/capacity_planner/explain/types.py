"""Result types of explain-log: settings, checks, one report per start-up, one per file.

A `Check` is one step of vLLM's start-up story, profile -> subtract -> carve -> report:
the formula with the log's numbers in it, what the formula gives, what the log printed,
and a verdict. Verdicts:

- ``consistent``: the logged number is what the formula gives, within the log's rounding;
- ``inconsistent``: it is not; `note` names the likely cause;
- ``derived``: vLLM did not print this number, we computed it from the ones it did;
- ``unchecked``: an input is missing; `note` says which;
- ``logged``: an input of the story as vLLM printed it (weights, activation peak, ...).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from capacity_planner.explain.patterns import Value

__all__ = ["STATUSES", "Check", "LogExplanation", "RunReport", "Setting", "Stage", "Status"]

Status = Literal["consistent", "inconsistent", "derived", "unchecked", "logged"]
Stage = Literal["profile", "subtract", "carve", "report", "model", "split", "pools"]
STATUSES: tuple[Status, ...] = ("consistent", "inconsistent", "derived", "unchecked", "logged")


@dataclass(frozen=True, slots=True)
class Setting:
    """A vLLM setting in effect for a run, and where its value came from."""

    name: str
    value: Value
    origin: str  # "line 12", "--block-size", "assumed: vLLM default", "inferred: ..."


@dataclass(frozen=True, slots=True)
class Check:
    """One recomputed number of the start-up story."""

    stage: Stage
    name: str
    formula: str
    expected: str | None
    logged: str | None
    status: Status
    note: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class RunReport:
    """Everything explain-log learned about one engine start-up."""

    index: int
    first_line: int
    last_line: int
    engine: str  # "V0", "V1", "SGLang" or "unknown"
    engine_origin: str
    vllm_version: str | None
    settings: tuple[Setting, ...]
    processes: tuple[str, ...]
    checks: tuple[Check, ...]
    missing: tuple[str, ...]
    notes: tuple[str, ...]
    model: str | None
    regime: str = ""  # the planner's vLLM regime (`capacity_planner.VLLM_FORMULAS`)

    @property
    def consistent(self) -> bool:
        return all(c.status != "inconsistent" for c in self.checks)

    def setting(self, name: str) -> Setting | None:
        for setting in self.settings:
            if setting.name == name:
                return setting
        return None

    def check(self, name: str) -> Check | None:
        for check in self.checks:
            if check.name == name:
                return check
        return None


@dataclass(frozen=True)
class LogExplanation:
    """The explanation of a whole log file: one `RunReport` per start-up found."""

    source: str
    num_lines: int
    runs: tuple[RunReport, ...]
    notes: tuple[str, ...]

    @property
    def consistent(self) -> bool:
        """True when no recomputed number disagrees with the log."""
        return all(run.consistent for run in self.runs)

    @property
    def found_anything(self) -> bool:
        return bool(self.runs)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data (the `--json` output)."""
        data = asdict(self)
        data["consistent"] = self.consistent
        for run, out in zip(self.runs, data["runs"], strict=True):
            out["consistent"] = run.consistent
        return data
