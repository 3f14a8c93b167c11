"""Grade a learner's Phase 02 lab-03 capacity arithmetic against this package's spec.

``python -m capacity_planner.kit --impl starter`` (or a path to a ``.py`` file) prints one line per
check and a score; ``--list`` prints the functions a learner's module defines. From a
teaching repository's ``test_lab.py``::

    import os
    import pytest
    from capacity_planner.kit import CHECKS, load_impl, run_check

    impl = load_impl("starter" if os.environ.get("LAB_IMPL") == "starter" else "solution")

    @pytest.mark.parametrize("check", CHECKS["lab03"], ids=lambda c: c.name)
    def test_lab03(check):
        run_check(check, impl)

The contract is in ``capacity_planner.kit.lab03``; the learner's module is imported by name or path,
never replaced by ours.
"""

from __future__ import annotations

from block_allocator.grading import (
    Check,
    CheckFailed,
    CheckResult,
    Kit,
    KitReport,
    KitUsageError,
    load_impl,
    run_check,
)
from capacity_planner.kit import lab03

__all__ = [
    "CHECKS",
    "CONTRACTS",
    "KIT",
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

CHECKS: dict[str, tuple[Check, ...]] = dict(lab03.CHECKS)
TIME_LIMIT = 10.0  # seconds per check
CONTRACTS: dict[str, str] = {"lab03": lab03.CONTRACT}


KIT = Kit("capacity_planner", CHECKS, CONTRACTS, default_lab="lab03", time_limit=TIME_LIMIT)
grade = KIT.grade
assert_lab = KIT.assert_lab
main = KIT.main
