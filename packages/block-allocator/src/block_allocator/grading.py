"""The engine of the course kits: load a learner's module, run named checks, report, score.

``frag_sim.kit`` (lab-02), ``capacity_planner.kit`` (lab-03) and ``paged_attn_kernels.kit``
(lab-04, lab-06) are each a set of checks on this one engine; it lives here, at the bottom
of the dependency graph, because every package depends on block-allocator. A check is a
function that receives the learner's module and raises ``CheckFailed`` (an
``AssertionError``) with a sentence a learner can act on. Nothing here imports an
implementation of ours: the learner's module is imported by name or path. (The
allocator's own kit, ``block_allocator.kit``, keeps its lab-specific runner, which diffs
pool states.) Standard library only.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import json
import os
import signal
import sys
import threading
import traceback
import unittest
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import EllipsisType, ModuleType
from typing import Any

__all__ = [
    "Check",
    "CheckFailed",
    "CheckResult",
    "Kit",
    "KitReport",
    "KitUsageError",
    "assert_lab",
    "grade",
    "load_impl",
    "main",
    "run_check",
]


class CheckFailed(AssertionError):
    """A learner's function gave a wrong answer; the message says which and why."""


class KitUsageError(ValueError):
    """The kit was pointed at something it cannot grade (no such module or lab)."""


class CheckTimeout(Exception):
    """A check ran past its time limit (an endless loop in the learner's code?)."""


@contextmanager
def _time_limit(seconds: float | None) -> Iterator[None]:
    # SIGALRM interrupts Python code only, and only on the main thread of a POSIX process;
    # elsewhere the check simply runs to its end.
    usable = hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()
    if not seconds or not usable:
        yield
        return

    def _alarm(signum: int, frame: object) -> None:
        raise CheckTimeout(f"did not finish within {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _no_skip() -> str | None:
    return None


@dataclass(frozen=True)
class Check:
    """One graded behaviour of one lab.

    ``needs`` lists the functions the learner's module must export for this check;
    ``skip_reason`` returns why the check cannot run here (no CUDA, no torch) or None.
    """

    name: str
    lab: str
    summary: str
    needs: tuple[str, ...]
    run: Callable[[ModuleType], None]
    skip_reason: Callable[[], str | None] = _no_skip


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: str  # "pass" | "fail" | "error" | "timeout" | "missing" | "skip"
    summary: str
    message: str = ""


@dataclass(frozen=True)
class KitReport:
    """Per-check results of one lab and the score over the checks that ran."""

    impl: str
    lab: str
    results: tuple[CheckResult, ...] = field(default=())

    @property
    def graded(self) -> int:
        return sum(r.status != "skip" for r in self.results)

    @property
    def passed(self) -> int:
        return sum(r.status == "pass" for r in self.results)

    @property
    def score(self) -> float:
        """Passed / graded (skipped checks do not count); 0.0 when nothing ran."""
        return self.passed / self.graded if self.graded else 0.0

    @property
    def ok(self) -> bool:
        return self.graded > 0 and self.passed == self.graded

    def render(self) -> str:
        lines = [f"{self.lab}: grading {self.impl}"]
        for r in self.results:
            lines.append(f"  {r.status.upper():<7} {r.name}: {r.summary}")
            for part in r.message.splitlines():
                lines.append(f"          {part}")
        skipped = len(self.results) - self.graded
        tail = f", {skipped} skipped" if skipped else ""
        lines.append(f"score: {self.passed}/{self.graded} checks passed ({self.score:.0%}){tail}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "impl": self.impl,
            "lab": self.lab,
            "passed": self.passed,
            "graded": self.graded,
            "score": self.score,
            "checks": [r.__dict__ for r in self.results],
        }


def load_impl(target: str | Path) -> ModuleType:
    """Import the learner's module from a dotted name (``starter``) or a ``.py`` path.

    A bare name is looked up on ``sys.path`` with the current directory first, as
    ``python -m pytest`` in a lab folder would.
    """
    text = str(target)
    if text.endswith(".py") or os.sep in text or "/" in text:
        path = Path(text).resolve()
        if not path.is_file():
            raise KitUsageError(f"--impl {text!r}: no such file")
        name = f"_kit_learner_{path.stem}_{abs(hash(path)) % 10**8}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise KitUsageError(f"--impl {text!r}: not a Python source file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        if str(path.parent) not in sys.path:
            sys.path.insert(0, str(path.parent))  # its sibling modules import, as under pytest
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[name]
            raise KitUsageError(f"--impl {text!r} failed to import: {exc!r}") from exc
        return module
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(text)
    except ModuleNotFoundError as exc:
        if exc.name == text.split(".")[0] or exc.name == text:
            raise KitUsageError(
                f"--impl {text!r}: no module of that name (give a module name on the "
                "Python path or a path to a .py file)"
            ) from exc
        raise KitUsageError(f"--impl {text!r} failed to import: {exc!r}") from exc
    except Exception as exc:
        raise KitUsageError(f"--impl {text!r} failed to import: {exc!r}") from exc


def _missing(check: Check, module: ModuleType) -> list[str]:
    return [n for n in check.needs if not callable(getattr(module, n, None))]


def _where(exc: BaseException, module: ModuleType) -> str:
    """The deepest traceback line inside the learner's file, if any."""
    origin = getattr(module, "__file__", None)
    frames = traceback.extract_tb(exc.__traceback__)
    mine = [f for f in frames if origin and Path(f.filename) == Path(origin)]
    if not mine:
        return ""
    f = mine[-1]
    return f"\nat {Path(f.filename).name}:{f.lineno} in {f.name}: {f.line}"


def _run_one(check: Check, module: ModuleType, time_limit: float | None = None) -> CheckResult:
    reason = check.skip_reason()
    if reason:
        return CheckResult(check.name, "skip", check.summary, reason)
    missing = _missing(check, module)
    if missing:
        names = ", ".join(f"{n}()" for n in missing)
        return CheckResult(check.name, "missing", check.summary, f"module defines no {names}")
    try:
        with _time_limit(time_limit):
            check.run(module)
    except CheckTimeout as exc:
        return CheckResult(check.name, "timeout", check.summary, f"{exc}{_where(exc, module)}")
    except CheckFailed as exc:
        return CheckResult(check.name, "fail", check.summary, str(exc))
    except NotImplementedError as exc:
        return CheckResult(check.name, "missing", check.summary, f"not implemented yet {exc}")
    except Exception as exc:
        msg = f"raised {type(exc).__name__}: {exc}{_where(exc, module)}"
        return CheckResult(check.name, "error", check.summary, msg)
    return CheckResult(check.name, "pass", check.summary)


def grade(
    impl: ModuleType | str | Path,
    lab: str,
    checks: Mapping[str, Sequence[Check]],
    time_limit: float | None = None,
) -> KitReport:
    """Run every check of ``lab`` against ``impl`` (a module, module name or path); each
    check gets ``time_limit`` seconds (None: no limit)."""
    if lab not in checks:
        raise KitUsageError(f"--lab {lab!r}: this kit grades {', '.join(sorted(checks))}")
    module = impl if isinstance(impl, ModuleType) else load_impl(impl)
    name = getattr(module, "__file__", None) or module.__name__
    if not isinstance(impl, ModuleType):
        name = str(impl)
    results = tuple(_run_one(c, module, time_limit) for c in checks[lab])
    return KitReport(impl=name, lab=lab, results=results)


def run_check(check: Check, module: ModuleType) -> None:
    """Run one check the way a test does: AssertionError on a wrong answer, a skip
    (``unittest.SkipTest``, which pytest honours) where it cannot run."""
    result = _run_one(check, module)
    if result.status == "skip":
        raise unittest.SkipTest(result.message)
    if result.status != "pass":
        raise CheckFailed(f"{check.name} ({result.status}): {result.message}")


def assert_lab(
    impl: ModuleType | str | Path,
    lab: str,
    checks: Mapping[str, Sequence[Check]],
    time_limit: float | None = None,
) -> KitReport:
    """For a ``test_lab.py``: grade one lab, fail with the whole report unless every check
    that ran passed, skip (``unittest.SkipTest``) when none could run here."""
    report = grade(impl, lab, checks, time_limit)
    if report.graded == 0:
        raise unittest.SkipTest(report.render())
    if not report.ok:
        raise CheckFailed(report.render())
    return report


def _version_of(prog: str) -> str:
    """The installed version of the distribution whose kit ``prog`` runs."""
    module = prog.split()[-1].split(".")[0]  # "python -m frag_sim.kit" -> "frag_sim"
    # this repository's distributions are their import names with dashes
    for dist in (
        module.replace("_", "-"),
        *importlib.metadata.packages_distributions().get(module, []),
    ):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "unknown"


def main(
    argv: Sequence[str] | None,
    *,
    prog: str,
    checks: Mapping[str, Sequence[Check]],
    default_lab: str,
    contract: Mapping[str, str],
    time_limit: float,
) -> int:
    """``python -m <package>.kit --impl MODULE [--lab LAB] [--json] [--list]``."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Grade a learner's module against the course lab's contract.",
    )
    parser.add_argument("--impl", help="module name (e.g. starter) or path to a .py file")
    parser.add_argument(
        "--lab", default=default_lab, choices=sorted(checks), help=f"default: {default_lab}"
    )
    parser.add_argument(
        "--time-limit",
        type=float,
        default=time_limit,
        help=f"seconds per check (default: {time_limit:g})",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--list", action="store_true", help="print the lab's contract and checks, then exit"
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version_of(prog)}")
    args = parser.parse_args(argv)
    if args.list:
        print(f"{args.lab}: your module defines\n{contract[args.lab]}\nchecks:")
        for c in checks[args.lab]:
            print(f"  {c.name}: {c.summary}")
        return 0
    if not args.impl:
        parser.error("--impl is required (a module name or a .py path)")
    if not args.time_limit > 0:
        parser.error(f"--time-limit must be > 0, got {args.time_limit}")
    try:
        report = grade(args.impl, args.lab, checks, args.time_limit)
    except KitUsageError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.render())
    return 0 if report.ok else 1


@dataclass(frozen=True)
class Kit:
    """One package's kit on this engine: its labs' checks and contracts, its defaults.

    A package's ``kit/__init__.py`` builds one and exports its bound ``grade``,
    ``assert_lab`` and ``main``; ``time_limit=...`` (the default) means the kit's own.
    """

    package: str  # import name, e.g. "frag_sim": the command is python -m <package>.kit
    checks: Mapping[str, Sequence[Check]]
    contracts: Mapping[str, str]
    default_lab: str
    time_limit: float  # seconds per check

    def _limit(self, time_limit: float | EllipsisType | None) -> float | None:
        return self.time_limit if time_limit is ... else time_limit

    def grade(
        self,
        impl: ModuleType | str | Path,
        lab: str | None = None,
        time_limit: float | EllipsisType | None = ...,
    ) -> KitReport:
        """Grade ``impl`` (a module, module name or ``.py`` path) on ``lab``."""
        return grade(impl, lab or self.default_lab, self.checks, self._limit(time_limit))

    def assert_lab(
        self,
        impl: ModuleType | str | Path,
        lab: str | None = None,
        time_limit: float | EllipsisType | None = ...,
    ) -> KitReport:
        """For a ``test_lab.py``: fail with the whole report unless every check that ran passed."""
        return assert_lab(impl, lab or self.default_lab, self.checks, self._limit(time_limit))

    def main(self, argv: Sequence[str] | None = None) -> int:
        return main(
            argv,
            prog=f"python -m {self.package}.kit",
            checks=self.checks,
            default_lab=self.default_lab,
            contract=self.contracts,
            time_limit=self.time_limit,
        )
