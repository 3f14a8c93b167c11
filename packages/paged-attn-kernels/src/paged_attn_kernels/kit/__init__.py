"""Grade a learner's Phase 02 lab-06 (numpy/numba) or lab-04 (Triton) paged attention.

``python -m paged_attn_kernels.kit --impl starter --lab lab06`` (or a path to a ``.py``
file) prints one line per check and a score; ``--list`` prints the functions a learner's
module defines. lab-04's checks run on a CUDA device and are skipped without one. From a
teaching repository's ``test_lab.py``::

    import os
    import pytest
    from paged_attn_kernels.kit import CHECKS, load_impl, run_check

    impl = load_impl("starter" if os.environ.get("LAB_IMPL") == "starter" else "solution")

    @pytest.mark.parametrize("check", CHECKS["lab06"], ids=lambda c: c.name)
    def test_lab06(check):
        run_check(check, impl)

The contracts are in ``paged_attn_kernels.kit.lab06`` and ``.lab04``; the learner's module
is imported by name or path, and nothing of this package's kernels is used to grade it.
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
from paged_attn_kernels.kit import lab04, lab06

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

CHECKS: dict[str, tuple[Check, ...]] = {**lab06.CHECKS, **lab04.CHECKS}
TIME_LIMIT = 120.0  # seconds per check (a numba kernel compiles on its first call)
CONTRACTS: dict[str, str] = {"lab06": lab06.CONTRACT, "lab04": lab04.CONTRACT}


def grade(
    impl: ModuleType | str | Path, lab: str = "lab06", time_limit: float | None = TIME_LIMIT
) -> KitReport:
    """Grade ``impl`` (a module, module name or ``.py`` path) on ``lab``."""
    return _grade(impl, lab, CHECKS, time_limit)


def assert_lab(
    impl: ModuleType | str | Path, lab: str = "lab06", time_limit: float | None = TIME_LIMIT
) -> KitReport:
    """For a ``test_lab.py``: fail with the whole report unless every check that ran passed."""
    return _assert_lab(impl, lab, CHECKS, time_limit)


def main(argv: Sequence[str] | None = None) -> int:
    return _main(
        argv,
        prog="python -m paged_attn_kernels.kit",
        checks=CHECKS,
        default_lab="lab06",
        contract=CONTRACTS,
        time_limit=TIME_LIMIT,
    )
