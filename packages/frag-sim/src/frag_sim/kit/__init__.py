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
from frag_sim.kit import lab02

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

CHECKS: dict[str, tuple[Check, ...]] = dict(lab02.CHECKS)
TIME_LIMIT = 10.0  # seconds per check
CONTRACTS: dict[str, str] = {"lab02": lab02.CONTRACT}


KIT = Kit("frag_sim", CHECKS, CONTRACTS, default_lab="lab02", time_limit=TIME_LIMIT)
grade = KIT.grade
assert_lab = KIT.assert_lab
main = KIT.main
