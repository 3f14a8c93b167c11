"""The conformance kit: grade a learner's block allocator against the Phase 02 labs.

``python -m block_allocator.kit --impl my_allocator`` imports ``my_allocator`` (a module
name on the path, or a ``.py`` file) and runs three sections: ``lab01`` (the Phase 02
mini-build's block, free queue, pool and chained hash, with Phase 02 lab-01's invariants),
``lab05`` (Phase 02 lab-05's share-and-evict biography on the mini-build's ``KVCacheManager``)
and ``ext`` (forks, events, vLLM 0.34 calls: skipped when absent, never scored). It
prints each check, what changed when one fails ("block 3: ref_cnt 1 -> 0, entered the
free queue at position 4") and a score per lab, and exits 1 when a scored check fails.

The kit imports nothing of ``block_allocator``'s implementation, so grading a learner's
module never loads ours. In a teaching repository's ``test_lab.py``::

    import os
    from block_allocator.kit import assert_lab

    IMPL = "starter" if os.environ.get("LAB_IMPL") == "starter" else "solution"

    def test_lab01():
        assert_lab(IMPL, "lab01")

``LAB_IMPL=starter pytest`` then grades the learner's ``starter.py``, as the course's
labs do; without it the solution is checked.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
import time
from pathlib import Path
from types import ModuleType

from . import ext, lab01, lab05  # noqa: F401  (registers the checks)
from ._adapt import KitRequest
from ._runner import LABS, CheckFailed, LabReport, print_report, run_lab

__all__ = ["LABS", "CheckFailed", "KitRequest", "LabReport", "assert_lab", "grade", "load_module"]


def load_module(impl: str | ModuleType) -> ModuleType:
    """The module to grade: a module object, an importable name, or a path to a ``.py`` file."""
    if isinstance(impl, ModuleType):
        return impl
    if impl.endswith(".py") or os.sep in impl:
        path = Path(impl).resolve()
        spec = importlib.util.spec_from_file_location(path.stem, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {impl}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[path.stem] = module
        spec.loader.exec_module(module)
        return module
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # like pytest: a starter.py next to you is importable
    return importlib.import_module(impl)


def grade(
    impl: str | ModuleType,
    labs: tuple[str, ...] = ("lab01", "lab05", "ext"),
    time_limit: float = 2.0,
    budget: float = 15.0,
) -> list[LabReport]:
    """Run the chosen sections against ``impl``.

    Each check gets ``time_limit`` seconds and the whole run ``budget`` seconds, so even a
    module that hangs in every check is reported in well under 20 s.
    """
    module = load_module(impl)
    unknown = [lab for lab in labs if lab not in LABS]
    if unknown:
        raise ValueError(f"labs must be among {LABS}, got {unknown}")
    deadline = time.perf_counter() + budget
    return [run_lab(module, lab, time_limit, deadline) for lab in labs]


def assert_lab(impl: str | ModuleType, lab: str, time_limit: float = 2.0) -> LabReport:
    """For a ``test_lab.py``: grade one lab and fail with the full report if a check fails."""
    (report,) = grade(impl, (lab,), time_limit)
    if not report.ok:
        import io

        buf = io.StringIO()
        print_report([report], getattr(impl, "__name__", str(impl)), verbose=False, out=buf)
        raise AssertionError(buf.getvalue())
    return report
