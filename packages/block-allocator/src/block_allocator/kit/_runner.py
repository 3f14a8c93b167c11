"""Checks, their registry, per-check time limits and the per-lab report.

A check is a function taking the learner's module. It fails by raising ``CheckFailed``
(or any exception: a crash is a failure too, reported with its type and message, never a
traceback). A check that needs an API beyond the mini-build names it in ``requires`` and
is skipped, not failed, when the module lacks it; such checks sit in their own section
(``ext``) and never count towards a lab's score.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from types import ModuleType
from typing import Any

__all__ = [
    "LABS",
    "Check",
    "CheckFailed",
    "LabReport",
    "NotImplementedByModule",
    "check",
    "run_lab",
]

LABS = ("lab01", "lab05", "ext")


class CheckFailed(AssertionError):
    """A check's expectation did not hold; the message says what and what changed."""


class NotImplementedByModule(Exception):
    """Raised by an ``ext`` check that finds its API missing in a way ``requires`` can't see."""


@dataclass(frozen=True)
class Check:
    lab: str
    name: str
    doc: str
    fn: Callable[[ModuleType], None]
    requires: tuple[str, ...] = ()


REGISTRY: list[Check] = []


def check(
    lab: str, *, requires: tuple[str, ...] = ()
) -> Callable[[Callable[[ModuleType], None]], Callable[[ModuleType], None]]:
    """Register ``fn`` as a check of ``lab``; its docstring's first line is its title."""

    def register(fn: Callable[[ModuleType], None]) -> Callable[[ModuleType], None]:
        doc = (fn.__doc__ or fn.__name__).strip().splitlines()[0]
        REGISTRY.append(Check(lab, fn.__name__, doc, fn, requires))
        return fn

    return register


def has_api(module: ModuleType, dotted: str) -> bool:
    obj: Any = module
    for part in dotted.split("."):
        if not hasattr(obj, part):
            return False
        obj = getattr(obj, part)
    return True


@dataclass
class Outcome:
    check: Check
    status: str  # "pass", "fail", "skip"
    message: str = ""
    seconds: float = 0.0


@dataclass
class LabReport:
    lab: str
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def scored(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status != "skip"] if self.lab != "ext" else []

    @property
    def passed(self) -> int:
        return sum(o.status == "pass" for o in self.scored)

    @property
    def ok(self) -> bool:
        return all(o.status != "fail" for o in self.outcomes) if self.lab != "ext" else True

    def score_line(self) -> str:
        if self.lab == "ext":
            done = sum(o.status == "pass" for o in self.outcomes)
            tried = sum(o.status != "skip" for o in self.outcomes)
            absent = len(self.outcomes) - tried
            return f"ext: {done}/{tried} extensions pass ({absent} not implemented; not scored)"
        total = len(self.scored)
        pct = 100.0 * self.passed / total if total else 0.0
        return f"{self.lab}: {self.passed}/{total} checks pass ({pct:.0f}%)"


class _Timeout(BaseException):
    """Raised inside a check that ran past its time limit (BaseException: not caught by it)."""


def _call_with_limit(fn: Callable[[], None], seconds: float) -> None:
    use_alarm = (
        hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    )
    if not use_alarm:
        fn()
        return

    def on_alarm(signum: int, frame: Any) -> None:
        raise _Timeout

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def run_lab(
    module: ModuleType, lab: str, time_limit: float = 2.0, deadline: float | None = None
) -> LabReport:
    """Run every check of ``lab`` against ``module``; each gets ``time_limit`` seconds.

    ``deadline`` (a ``time.perf_counter()`` value) caps the whole run: checks that would
    start after it fail as "not run", so a module that hangs everywhere still gets its
    report in bounded time.
    """
    report = LabReport(lab)
    for chk in (c for c in REGISTRY if c.lab == lab):
        missing = [r for r in chk.requires if not has_api(module, r)]
        if missing:
            report.outcomes.append(Outcome(chk, "skip", f"not implemented: {', '.join(missing)}"))
            continue
        t0 = time.perf_counter()
        left = time_limit if deadline is None else min(time_limit, deadline - t0)
        if left <= 0:
            msg = "not run: the kit's time budget ran out (earlier checks timed out)"
            report.outcomes.append(Outcome(chk, "fail", msg))
            continue
        try:
            _call_with_limit(partial(chk.fn, module), left)
        except _Timeout:
            msg = f"no answer within {time_limit:g} s (an endless loop? a cycle in the free queue?)"
            report.outcomes.append(Outcome(chk, "fail", msg, time.perf_counter() - t0))
        except CheckFailed as exc:
            report.outcomes.append(Outcome(chk, "fail", str(exc), time.perf_counter() - t0))
        except NotImplementedByModule as exc:
            report.outcomes.append(Outcome(chk, "skip", f"not implemented: {exc}"))
        except Exception as exc:  # a crash in the learner's code is a failed check
            where = _learner_frame(exc, module)
            msg = f"raised {type(exc).__name__}: {exc}{where}"
            report.outcomes.append(Outcome(chk, "fail", msg, time.perf_counter() - t0))
        else:
            report.outcomes.append(Outcome(chk, "pass", "", time.perf_counter() - t0))
    return report


def _learner_frame(exc: BaseException, module: ModuleType) -> str:
    # Point at the learner's line, the one place a crash is worth reading.
    path = getattr(module, "__file__", None)
    tb = exc.__traceback__
    found = ""
    while tb is not None:
        if path and tb.tb_frame.f_code.co_filename == path:
            found = f" (at {tb.tb_frame.f_code.co_name}, line {tb.tb_lineno} of your module)"
        tb = tb.tb_next
    return found


def print_report(
    reports: list[LabReport], module_name: str, verbose: bool, out: Any = None
) -> None:
    out = out or sys.stdout
    print(f"block-allocator conformance kit: grading {module_name}", file=out)
    for report in reports:
        print(f"\n== {report.lab} ==", file=out)
        for o in report.outcomes:
            mark = {"pass": "PASS", "fail": "FAIL", "skip": "SKIP"}[o.status]
            if o.status == "pass" and not verbose:
                print(f"  {mark}  {o.check.name}", file=out)
                continue
            print(f"  {mark}  {o.check.name}: {o.check.doc}", file=out)
            for line in o.message.splitlines():
                print(f"        {line}", file=out)
    print("", file=out)
    for report in reports:
        print(report.score_line(), file=out)
