# ruff: noqa: E501
"""The conformance kit (``block_allocator.kit``): fair to a correct learner, hard on bugs.

A learner's allocator written only from the Phase 02 mini-build (``fixtures/``) gets
full marks on lab01 and lab05 with every extension skipped; each planted bug fails the
check named for it; a hang is reported as a timeout; failures say what changed; the CLI
grades a module in a fresh process in which our implementation modules cannot even be
imported; and the kit's files are in the wheel.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from block_allocator.kit import assert_lab, grade

pytestmark = pytest.mark.extended

TESTS = Path(__file__).resolve().parent
FIXTURES = TESTS / "fixtures"
EXAMPLES = TESTS.parent / "examples"
sys.path.insert(0, str(FIXTURES))

import minibuild_allocator  # noqa: E402
import planted_bugs  # noqa: E402

IMPLEMENTATION = (
    "_checks", "_release", "block", "block_pool", "block_table", "defaults", "errors", "events",
    "free_queue", "hashing", "kv_cache_manager", "kv_cache_spec", "prefix_cache", "request",
)  # fmt: skip


def failed(reports: list) -> dict[str, str]:  # type: ignore[type-arg]
    return {o.check.name: o.message for r in reports for o in r.outcomes if o.status == "fail"}


def test_the_minibuild_learner_gets_full_marks() -> None:
    lab01, lab05, ext = grade(minibuild_allocator)
    assert lab01.ok and lab05.ok
    assert lab01.passed == len(lab01.outcomes) >= 10
    assert lab05.passed == len(lab05.outcomes) >= 8
    assert {o.status for o in ext.outcomes} == {"skip"}  # no extension is demanded
    assert "0/0 extensions" in ext.score_line() and "100%" in lab05.score_line()
    assert_lab(minibuild_allocator, "lab05")


def test_our_package_passes_everything_extensions_included() -> None:
    import block_allocator

    reports = grade(block_allocator)
    assert not failed(reports)
    assert all(o.status == "pass" for o in reports[2].outcomes)


@pytest.mark.parametrize("bug", sorted(planted_bugs.BUGS))
def test_each_planted_bug_fails_its_check(bug: str) -> None:
    reports = grade(planted_bugs.variant(bug), time_limit=0.25, budget=3.0)
    fails = failed(reports)
    _, expected = planted_bugs.BUGS[bug]
    assert expected in fails, f"{bug}: failed {sorted(fails)}"
    assert not all(r.ok for r in reports[:2])
    with pytest.raises(AssertionError, match="FAIL"):
        assert_lab(planted_bugs.variant(bug), next(r.lab for r in reports if not r.ok), 0.25)


def test_a_hang_is_reported_as_a_timeout_within_the_budget() -> None:
    fails = failed(grade(planted_bugs.variant("endless_queue"), ("lab01",), time_limit=0.3))
    assert any("no answer within 0.3 s" in msg for msg in fails.values())
    # A module hanging in every check: once the budget is spent, the rest are "not run".
    reports = grade(planted_bugs.variant("endless_queue"), time_limit=0.3, budget=0.9)
    messages = [o.message for r in reports for o in r.outcomes]
    assert any(m.startswith("not run: the kit's time budget ran out") for m in messages)


def test_failures_say_what_changed() -> None:
    fails = failed(grade(planted_bugs.variant("free_forward"), ("lab05",)))
    msg = fails["free_releases_in_reverse_order"]
    assert "ref_cnt 1 -> 0, entered the free queue at position" in msg
    fails = failed(grade(planted_bugs.variant("pops_before_checking"), ("lab01",)))
    assert "ref_cnt 0 -> 1, left the free queue" in fails["refused_allocation_changes_nothing"]


BLOCKER = """
import importlib.abc, runpy, sys
BLOCKED = {blocked!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name in BLOCKED:
            raise ImportError(f"the kit imported {{name}}")
sys.meta_path.insert(0, Block())
sys.argv = ["block_allocator.kit", *{argv!r}]
try:
    runpy.run_module("block_allocator.kit", run_name="__main__")
finally:
    loaded = sorted(m for m in sys.modules if m in BLOCKED)
    print("LOADED", loaded)
"""


def run_kit(argv: list[str], extra_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    code = BLOCKER.format(blocked={f"block_allocator.{m}" for m in IMPLEMENTATION}, argv=argv)
    env = {**os.environ, "PYTHONPATH": str(extra_path or FIXTURES)}
    env.pop("BLOCK_ALLOCATOR_IMPL", None)
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, cwd=TESTS
    )


def test_cli_grades_a_learner_without_importing_our_implementation() -> None:
    run = run_kit(["--impl", "minibuild_allocator"])
    assert run.returncode == 0, run.stdout + run.stderr
    assert "lab01: 12/12 checks pass (100%)" in run.stdout
    assert "lab05: 9/9 checks pass (100%)" in run.stdout
    assert "LOADED []" in run.stdout


def test_cli_fails_a_planted_bug_with_exit_code_1(tmp_path: Path) -> None:
    path = FIXTURES / "minibuild_allocator.py"
    target = tmp_path / "forward_free.py"
    target.write_text(path.read_text().replace("reversed(blocks)", "blocks"))
    run = run_kit(["--impl", str(target), "--lab", "lab05"])
    assert run.returncode == 1, run.stdout + run.stderr
    assert "FAIL  free_releases_in_reverse_order" in run.stdout
    assert "lab05: " in run.stdout and "LOADED []" in run.stdout


def test_cli_catches_the_broken_example() -> None:
    # examples/broken_allocator.py derives from our package on purpose, so it runs unblocked.
    if not (EXAMPLES / "broken_allocator.py").exists():
        pytest.skip("examples/ is not next to tests/ (the suite runs outside the source tree)")
    env = {**os.environ, "PYTHONPATH": str(EXAMPLES)}
    run = subprocess.run(
        [sys.executable, "-m", "block_allocator.kit", "--impl", "broken_allocator", "--lab", "lab05"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 1
    assert "FAIL  free_releases_in_reverse_order" in run.stdout
    assert "FAIL  hits_are_capped_at_num_tokens_minus_one" in run.stdout
    assert "PASS  identical_prompts_converge" in run.stdout  # no false alarm


def test_cli_version() -> None:
    from importlib.metadata import version

    run = subprocess.run(
        [sys.executable, "-m", "block_allocator.kit", "--version"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 0 and version("block-allocator") in run.stdout


def test_cli_reports_an_unimportable_module_without_a_traceback() -> None:
    run = run_kit(["--impl", "no_such_learner_module"])
    assert run.returncode == 2
    assert "cannot import 'no_such_learner_module'" in run.stderr
    assert "Traceback" not in run.stderr


def test_the_kit_ships_in_the_wheel(tmp_path: Path) -> None:
    source = TESTS.parent
    if not (source / "pyproject.toml").exists():
        pytest.skip("tests run outside the source tree; the installed kit imported above")
    pytest.importorskip("hatchling", reason="building the wheel needs hatchling")
    subprocess.run(
        [sys.executable, "-m", "hatchling", "build", "-t", "wheel", "-d", str(tmp_path)],
        cwd=source, check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("block_allocator-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for part in ("__init__", "__main__", "_adapt", "_runner", "lab01", "lab05", "ext"):
        assert f"block_allocator/kit/{part}.py" in names
