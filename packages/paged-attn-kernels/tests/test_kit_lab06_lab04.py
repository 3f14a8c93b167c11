"""The lab-06 / lab-04 kit grades a learner's kernels: correct modules (numpy, numba, torch)
pass, and each planted bug fails the checks that describe it and no others.

The fixtures in ``kit_fixtures/`` are learner modules written from the kit's contract and
loaded by path, as a student's ``starter.py`` would be. lab-04's checks run here on the CPU
(``PAGED_ATTN_KIT_DEVICE=cpu``) with a plain-torch module standing in for a Triton kernel;
on a CUDA machine they run as a learner would run them.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from paged_attn_kernels import dense_attention_reference, gather_kv, paged_attention
from paged_attn_kernels.kit import CHECKS, CheckFailed, grade, load_impl, run_check
from paged_attn_kernels.kit.cases import make_case

FIXTURES = Path(__file__).parent / "kit_fixtures"
HAS_TORCH = importlib.util.find_spec("torch") is not None
HAS_NUMBA = importlib.util.find_spec("numba") is not None


@pytest.fixture(autouse=True)
def _fixtures_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FIXTURES))


def statuses(name: str, lab: str = "lab06") -> dict[str, str]:
    return {r.name: r.status for r in grade(FIXTURES / name, lab).results}


def test_correct_numpy_module_scores_full_marks() -> None:
    report = grade(FIXTURES / "lab06_solution.py")
    assert report.ok and report.score == 1.0, report.render()
    assert report.graded == len(CHECKS["lab06"])


@pytest.mark.skipif(not HAS_NUMBA, reason="numba is not installed (extra [numba])")
def test_correct_numba_module_passes_every_attention_check() -> None:
    report = grade(FIXTURES / "lab06_numba_solution.py")
    assert report.ok, report.render()


def test_interleaved_gqa_heads_are_caught_and_mha_still_passes() -> None:
    got = statuses("lab06_gqa_modulo.py")
    assert got["attention_gqa"] == "fail"
    assert got["attention_mha"] == got["attention_ragged"] == got["attention_block_sizes"] == "pass"


def test_unmasked_tail_is_caught_by_ragged_and_poisoned_checks() -> None:
    got = statuses("lab06_unmasked_tail.py")
    assert got["attention_ragged"] == got["attention_poisoned"] == "fail"
    assert got["attention_mha"] == got["attention_gqa"] == "pass"  # whole blocks hide it
    report = grade(FIXTURES / "lab06_unmasked_tail.py")
    msg = next(r.message for r in report.results if r.name == "attention_poisoned")
    assert "not finite" in msg and "poisoned" in msg


def test_writing_padding_slots_is_caught() -> None:
    got = statuses("lab06_write_wraps.py")
    assert got["write_skips_padding"] == "fail"
    assert got["write_scatter"] == "pass"


def test_missing_functions_are_reported_per_check(tmp_path: Path) -> None:
    partial = tmp_path / "starter.py"
    partial.write_text(
        "from lab06_solution import slot_mapping  # noqa: F401\n"
        "def paged_attention(*args):\n    raise NotImplementedError('TODO')\n"
    )
    got = {r.name: r.status for r in grade(partial).results}
    assert got["slot_formula"] == "pass"
    assert got["write_scatter"] == got["gather_roundtrip"] == got["attention_mha"] == "missing"


def test_cases_agree_with_this_packages_kernels() -> None:
    """The kit's dense answer equals paged_attention and gather_kv of this package."""
    case = make_case(10, [37, 5, 61, 1], block_size=16, num_kv_heads=2, num_heads=4, poison=True)
    args = (case.query, case.key_cache, case.value_cache, case.block_table, case.seq_lens)
    ours = paged_attention(*args, backend="numpy")
    np.testing.assert_allclose(ours, case.expected, rtol=0, atol=1e-12)
    keys, values = gather_kv(case.key_cache, case.value_cache, case.block_table, case.seq_lens)
    dense = dense_attention_reference(case.query, keys, values, case.seq_lens)
    np.testing.assert_allclose(dense, case.expected, rtol=0, atol=1e-12)


def test_lab04_checks_skip_with_a_reason_without_a_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGED_ATTN_KIT_DEVICE", "cuda:0")
    if HAS_TORCH:
        import torch

        if torch.cuda.is_available():
            pytest.skip("a CUDA device is present: the checks run instead")
    report = grade(FIXTURES / "lab06_solution.py", "lab04")
    assert {r.status for r in report.results} == {"skip"} and report.graded == 0
    assert not report.ok  # nothing graded is not a pass
    reason = report.results[0].message
    assert ("CUDA" in reason) or ("torch is not installed" in reason)


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (extra [triton])")
def test_lab04_on_the_cpu_grades_a_torch_module(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAGED_ATTN_KIT_DEVICE", "cpu")
    good = grade(FIXTURES / "lab04_torch_solution.py", "lab04")
    assert good.ok, good.render()
    bad = grade(FIXTURES / "lab04_torch_reads_padding.py", "lab04")
    assert bad.passed == 0 and bad.graded == len(CHECKS["lab04"])  # padding is read everywhere
    msg = next(r.message for r in bad.results if r.name == "gpu_poisoned")
    assert "not finite" in msg


def test_run_check_for_a_teaching_repos_test_lab() -> None:
    check = next(c for c in CHECKS["lab06"] if c.name == "attention_gqa")
    run_check(check, load_impl(FIXTURES / "lab06_solution.py"))
    with pytest.raises(CheckFailed, match="attention_gqa"):
        run_check(check, load_impl(FIXTURES / "lab06_gqa_modulo.py"))


def test_cli_reports_a_score_and_exit_status() -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "paged_attn_kernels.kit", *args],
            cwd=FIXTURES,
            capture_output=True,
            text=True,
            timeout=120,
        )

    ok = cli("--impl", "lab06_solution")
    assert ok.returncode == 0 and "score: 13/13 checks passed (100%)" in ok.stdout, ok.stdout
    bad = cli("--impl", "lab06_unmasked_tail.py")
    assert bad.returncode == 1 and "FAIL    attention_poisoned" in bad.stdout


def test_assert_lab_skips_lab04_where_nothing_can_run(monkeypatch: pytest.MonkeyPatch) -> None:
    import unittest

    from paged_attn_kernels.kit import assert_lab

    monkeypatch.setenv("PAGED_ATTN_KIT_DEVICE", "cuda:0")
    if HAS_TORCH:
        import torch

        if torch.cuda.is_available():
            pytest.skip("a CUDA device is present: the checks run instead")
    with pytest.raises(unittest.SkipTest):
        assert_lab(FIXTURES / "lab06_solution.py", "lab04")
    assert assert_lab(FIXTURES / "lab06_solution.py", "lab06").ok


def test_softmax_without_the_max_is_caught_by_the_stability_check_only() -> None:
    report = grade(FIXTURES / "lab06_no_max.py")
    failed = {r.name for r in report.results if r.status != "pass"}
    assert failed == {"attention_stable"}, report.render()
    msg = next(r.message for r in report.results if r.name == "attention_stable")
    assert "overflow" in msg and "poisoned" not in msg
