"""The lab-03 kit grades a learner's capacity arithmetic: a correct module passes, planted
bugs are caught, and the kit's reference answers equal ``capacity_planner.plan``'s."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capacity_planner import EngineSettings, ModelSpec, gpu_from_name, plan
from capacity_planner.kit import CHECKS, CheckFailed, grade, load_impl, run_check
from capacity_planner.kit.lab03 import LLAMA_3_8B, OPT_13B, QWEN3_4B, reference

FIXTURES = Path(__file__).parent / "kit_fixtures"


@pytest.fixture(autouse=True)
def _fixtures_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(FIXTURES))


def statuses(name: str) -> dict[str, str]:
    return {r.name: r.status for r in grade(FIXTURES / name).results}


def test_correct_learner_module_scores_full_marks() -> None:
    report = grade(FIXTURES / "lab03_solution.py")
    assert report.ok and report.score == 1.0, report.render()
    assert report.graded == len(CHECKS["lab03"])


def test_ignoring_head_dim_is_caught_and_nothing_else_blamed() -> None:
    got = statuses("lab03_head_dim.py")
    assert got["head_dim_field"] == "fail"
    assert got["random_settings"] == "fail"
    assert got["bytes_per_token"] == got["course_run"] == got["carve"] == "pass"


def test_v0_concurrency_formula_is_caught() -> None:
    got = statuses("lab03_v0_concurrency.py")
    assert got["partial_last_block"] == "fail"
    assert got["course_run"] == "pass"  # 2048 is a whole number of blocks: the course hides it
    report = grade(FIXTURES / "lab03_v0_concurrency.py")
    msg = next(r.message for r in report.results if r.name == "partial_last_block")
    assert "max_concurrency(8788, 16, 2049)" in msg and "cdiv" in msg


def test_run_check_raises_for_a_wrong_module() -> None:
    check = next(c for c in CHECKS["lab03"] if c.name == "head_dim_field")
    run_check(check, load_impl(FIXTURES / "lab03_solution.py"))
    with pytest.raises(CheckFailed, match="head_dim"):
        run_check(check, load_impl(FIXTURES / "lab03_head_dim.py"))


def test_cli_grades_by_module_name() -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "capacity_planner.kit", *args],
            cwd=FIXTURES,
            capture_output=True,
            text=True,
            timeout=60,
        )

    ok = cli("--impl", "lab03_solution")
    assert ok.returncode == 0 and "score: 11/11 checks passed (100%)" in ok.stdout, ok.stdout
    bad = cli("--impl", "lab03_head_dim", "--json")
    assert bad.returncode == 1 and json.loads(bad.stdout)["passed"] < 11
    usage = cli("--impl", "lab03_solution", "--lab", "lab09")
    assert usage.returncode == 2 and "invalid choice" in usage.stderr


@pytest.mark.parametrize(
    ("config", "expected"),
    [(LLAMA_3_8B, 128 * 1024), (QWEN3_4B, 2 * 36 * 8 * 128 * 2), (OPT_13B, 800 * 1024)],
)
def test_reference_bytes_equal_the_planners_page_arithmetic(
    config: dict[str, Any], expected: int
) -> None:
    assert reference.kv_bytes_per_token(config, 2) == expected
    p = plan(
        ModelSpec.from_hf_config({**config, "torch_dtype": "float16", "vocab_size": 32000}),
        gpu_from_name("H100"),
        EngineSettings(
            kv_cache_memory_bytes=expected * 16 * 1000, max_model_len=2048, block_size=16
        ),
    )
    assert p.kv.num_blocks == 1000


@settings(max_examples=40, deadline=None)
@given(
    kv_mib=st.integers(64, 60_000),
    block_size=st.sampled_from([16, 32, 64]),
    max_model_len=st.integers(16, 65_536),
)
def test_reference_carve_and_concurrency_equal_the_planner(
    kv_mib: int, block_size: int, max_model_len: int
) -> None:
    available = kv_mib << 20
    p = plan(
        ModelSpec.from_hf_config({**LLAMA_3_8B, "torch_dtype": "bfloat16", "vocab_size": 128256}),
        gpu_from_name("H100"),
        EngineSettings(
            kv_cache_memory_bytes=available,
            block_size=block_size,
            max_model_len=max_model_len,
            vllm_version="v1",
        ),
    )
    blocks = reference.num_gpu_blocks(
        available, reference.kv_bytes_per_token(LLAMA_3_8B, 2), block_size
    )
    assert p.kv.num_blocks == blocks
    assert p.kv.num_tokens == reference.kv_cache_tokens(blocks, block_size)
    assert p.kv.max_concurrency == pytest.approx(
        reference.max_concurrency(blocks, block_size, max_model_len), rel=1e-12
    )


def test_kit_version_is_the_package_version() -> None:
    import capacity_planner

    out = subprocess.run(
        [sys.executable, "-m", "capacity_planner.kit", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split()[-1] == capacity_planner.__version__
