"""Grade a learner's Phase 02 lab-02 model (contiguous vs paged) against this package's spec.

``python -m frag_sim.kit --impl starter`` (or a path to a ``.py`` file) prints one line per
check and a score; ``--list`` prints the functions a learner's module defines. From a
teaching repository's ``test_lab.py``::

    import os
    import pytest
    from frag_sim.kit import CHECKS, load_impl, run_check

    impl = load_impl("starter" if os.environ.get("LAB_IMPL") == "starter" else "solution")

    @pytest.mark.parametrize("check", CHECKS["lab02"], ids=lambda c: c.name)
    def test_lab02(check):
        run_check(check, impl)

The contract is in ``frag_sim.kit.lab02``; the learner's module is imported by name or path,
never replaced by ours.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

from block_allocator.grading import (
    Check,
    CheckFailed,
    CheckResult,
    KitReport,
    KitUsageError,
    load_impl,
    run_check,
)
from block_allocator.grading import assert_lab as _assert_lab
from block_allocator.grading import grade as _grade
from block_allocator.grading import main as _main
from frag_sim.kit import lab02

__all__ = [
    "CHECKS",
    "CONTRACTS",
    "TIME_LIMIT",
    "Check",
    "CheckFailed",
    "CheckResult",
    "KitReport",
    "KitUsageError",
    "assert_lab",
    "grade",
    "load_impl",
    "main",
    "run_check",
]

CHECKS: dict[str, tuple[Check, ...]] = dict(lab02.CHECKS)
TIME_LIMIT = 10.0  # seconds per check
CONTRACTS: dict[str, str] = {"lab02": lab02.CONTRACT}


def grade(
    impl: ModuleType | str | Path, lab: str = "lab02", time_limit: float | None = TIME_LIMIT
) -> KitReport:
    """Grade ``impl`` (a module, module name or ``.py`` path) on ``lab``."""
    return _grade(impl, lab, CHECKS, time_limit)


def assert_lab(
    impl: ModuleType | str | Path, lab: str = "lab02", time_limit: float | None = TIME_LIMIT
) -> KitReport:
    """For a ``test_lab.py``: fail with the whole report unless every check that ran passed."""
    return _assert_lab(impl, lab, CHECKS, time_limit)


def main(argv: Sequence[str] | None = None) -> int:
    return _main(
        argv,
        prog="python -m frag_sim.kit",
        checks=CHECKS,
        default_lab="lab02",
        contract=CONTRACTS,
        time_limit=TIME_LIMIT,
    )
