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
from paged_attn_kernels.kit import lab04, lab06

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

CHECKS: dict[str, tuple[Check, ...]] = {**lab06.CHECKS, **lab04.CHECKS}
TIME_LIMIT = 120.0  # seconds per check (a numba kernel compiles on its first call)
CONTRACTS: dict[str, str] = {"lab06": lab06.CONTRACT, "lab04": lab04.CONTRACT}


KIT = Kit("paged_attn_kernels", CHECKS, CONTRACTS, default_lab="lab06", time_limit=TIME_LIMIT)
grade = KIT.grade
assert_lab = KIT.assert_lab
main = KIT.main
