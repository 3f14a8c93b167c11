"""The lab-02 kit grades a learner's module: a correct one passes, planted bugs are caught.

The fixtures in ``kit_fixtures/`` are learner modules written from the kit's contract; the
kit imports them by path, as it would a student's ``starter.py``. The kit's reference
answers are checked against the real ``block_allocator.BlockPool`` here, so the model the
kit grades with is the allocator's behaviour, not an opinion.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from block_allocator import BlockPool
from frag_sim.kit import CHECKS, CheckFailed, grade, load_impl, run_check
from frag_sim.kit.lab02 import reference

FIXTURES = Path(__file__).parent / "kit_fixtures"


@pytest.fixture(autouse=True)
def _fixtures_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FIXTURES))  # the bug fixtures import the solution


def statuses(path: Path) -> dict[str, str]:
    return {r.name: r.status for r in grade(path).results}


def test_correct_learner_module_scores_full_marks() -> None:
    report = grade(FIXTURES / "lab02_solution.py")
    assert report.ok and report.score == 1.0, report.render()
    assert report.graded == len(CHECKS["lab02"])


def test_floor_instead_of_ceil_is_caught_where_it_matters() -> None:
    got = statuses(FIXTURES / "lab02_floor_blocks.py")
    assert got["partial_blocks"] == "fail"
    assert got["random_streams"] == "fail"
    assert got["course_stream"] == "pass"  # 192 = 12 x 16: the lab's own stream hides the bug


def test_queue_jumping_admission_is_caught() -> None:
    got = statuses(FIXTURES / "lab02_skips.py")
    assert got["fcfs_no_skipping"] == "fail"
    assert got["block_size_one"] == "pass"
    report = grade(FIXTURES / "lab02_skips.py")
    assert 0 < report.score < 1 and not report.ok


def test_failure_message_names_the_call_and_the_expected_value() -> None:
    report = grade(FIXTURES / "lab02_floor_blocks.py")
    msg = next(r.message for r in report.results if r.name == "partial_blocks")
    assert "paged_admissions([17, 33, 1, 16, 100, 15], 160, 16)" in msg
    assert "expected" in msg


def test_a_module_without_the_functions_is_reported_missing(tmp_path: Path) -> None:
    empty = tmp_path / "starter.py"
    empty.write_text("def contiguous_admissions(a, b, c):\n    raise NotImplementedError\n")
    report = grade(empty)
    assert {r.status for r in report.results} == {"missing"}
    assert report.score == 0.0


def test_learner_exception_reports_the_learner_line(tmp_path: Path) -> None:
    bad = tmp_path / "crashy.py"
    bad.write_text(
        "from lab02_solution import *  # noqa\n"
        "def paged_waste(seq_lens, capacity_tokens, block_size):\n"
        "    return 1 / 0\n"
    )
    report = grade(bad)
    msg = next(r.message for r in report.results if r.name == "block_size_one")
    assert "ZeroDivisionError" in msg and "crashy.py:3" in msg


def test_run_check_is_a_test_a_teaching_repo_can_parametrize() -> None:
    good = load_impl(FIXTURES / "lab02_solution.py")
    bad = load_impl(FIXTURES / "lab02_floor_blocks.py")
    check = next(c for c in CHECKS["lab02"] if c.name == "partial_blocks")
    run_check(check, good)
    with pytest.raises(CheckFailed, match="partial_blocks"):
        run_check(check, bad)


def test_cli_exit_codes_and_json(tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "frag_sim.kit", *args],
            cwd=FIXTURES,
            capture_output=True,
            text=True,
            timeout=60,
        )

    ok = cli("--impl", "lab02_solution")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "score: 9/9 checks passed (100%)" in ok.stdout
    bad = cli("--impl", "lab02_skips", "--json")
    assert bad.returncode == 1
    payload = json.loads(bad.stdout)
    assert payload["lab"] == "lab02" and payload["passed"] < payload["graded"]
    missing = cli("--impl", "no_such_module_here")
    assert missing.returncode == 2
    assert "no module of that name" in missing.stderr and "Traceback" not in missing.stderr
    listed = cli("--list")
    assert "paged_admissions(seq_lens, capacity_tokens, block_size)" in listed.stdout


def admit_on_pool(seq_lens: list[int], capacity_tokens: int, block_size: int) -> int:
    """FCFS admission on the real allocator: each request takes its blocks or stops the queue."""
    if capacity_tokens < block_size:
        return 0  # not one block of memory
    pool = BlockPool(num_blocks=capacity_tokens // block_size + 1)  # + the null block
    admitted = 0
    for n in seq_lens:
        need = -(-n // block_size)
        if need > pool.get_num_free_blocks():
            break
        pool.get_new_blocks(need)
        admitted += 1
    return admitted


@settings(max_examples=60, deadline=None)
@given(
    seq_lens=st.lists(st.integers(1, 3000), min_size=1, max_size=40),
    capacity=st.integers(16, 50_000),
    block_size=st.sampled_from([1, 2, 8, 16, 32, 128]),
)
def test_reference_paged_admissions_equal_the_real_block_pool(
    seq_lens: list[int], capacity: int, block_size: int
) -> None:
    assert reference.paged_admissions(seq_lens, capacity, block_size) == admit_on_pool(
        seq_lens, capacity, block_size
    )


def test_assert_lab_is_the_one_line_test_lab() -> None:
    from frag_sim.kit import assert_lab

    report = assert_lab(FIXTURES / "lab02_solution.py")
    assert report.ok
    with pytest.raises(CheckFailed, match=r"score: \d/9 checks passed"):
        assert_lab(FIXTURES / "lab02_skips.py")


def test_an_endless_loop_times_out_and_the_rest_still_run(tmp_path: Path) -> None:
    looping = tmp_path / "looping.py"
    looping.write_text(
        "from lab02_solution import *  # noqa\n"
        "def paged_waste(seq_lens, capacity_tokens, block_size):\n"
        "    while True:\n"
        "        pass\n"
    )
    report = grade(looping, time_limit=0.5)
    got = {r.name: r.status for r in report.results}
    assert got["block_size_one"] == "timeout"
    assert got["fcfs_no_skipping"] == "timeout"
    assert got["short_stream"] == "pass"  # checks that never call paged_waste still pass


def test_a_learner_module_may_import_its_sibling_files(tmp_path: Path) -> None:
    lab = tmp_path / "lab-02-fragmentation-viz"
    lab.mkdir()
    (lab / "my_blocks.py").write_text("def cdiv(a, b):\n    return -(-a // b)\n")
    (lab / "starter.py").write_text(
        (FIXTURES / "lab02_solution.py")
        .read_text()
        .replace('"""A correct', 'from my_blocks import cdiv  # noqa: F401\n"""A correct', 1)
    )
    assert grade(lab / "starter.py").ok
