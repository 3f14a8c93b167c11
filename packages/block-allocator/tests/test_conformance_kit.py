"""The conformance kit grades another implementation and catches its bugs.

Runs the spec tests in a subprocess against ``examples/broken_allocator.py`` (reverse-order
free and the ``num_tokens - 1`` cap removed) and checks they fail where they should, then
against ``block_allocator`` through the environment variable and checks they pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _allocator_impl import IMPL_NAME

pytestmark = [
    pytest.mark.extended,
    pytest.mark.skipif(IMPL_NAME != "block_allocator", reason="tests the kit, not an impl"),
]

PACKAGE = Path(__file__).resolve().parents[1]
SELECTION = ["-m", "lab05", "-k", "biography or reverse_order", "-p", "no:cacheprovider"]


def run_kit(extra: list[str], impl_env: str | None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(PACKAGE / "examples")}
    env.pop("BLOCK_ALLOCATOR_IMPL", None)
    if impl_env is not None:
        env["BLOCK_ALLOCATOR_IMPL"] = impl_env
    cmd = [sys.executable, "-m", "pytest", str(PACKAGE / "tests"), *SELECTION, *extra]
    return subprocess.run(cmd, env=env, cwd=PACKAGE, capture_output=True, text=True, timeout=120)


def test_broken_learner_module_fails_the_right_tests() -> None:
    run = run_kit(["--impl", "broken_allocator"], impl_env=None)
    assert run.returncode == 1, run.stdout[-2000:]
    assert "implementation under test: broken_allocator" in run.stdout
    failed = {
        line.split("::")[1].split(" ")[0]
        for line in run.stdout.splitlines()
        if line.startswith("FAILED")
    }
    assert "test_eviction_takes_tails_before_shared_prefixes" in failed
    assert "test_free_releases_in_reverse_order" in failed
    assert any(name.startswith("test_hits_are_capped_at_num_tokens_minus_one") for name in failed)
    assert "test_identical_prompts_converge_on_the_same_blocks" not in failed  # not a false alarm


def test_reference_module_passes_through_the_environment_variable() -> None:
    run = run_kit([], impl_env="block_allocator")
    assert run.returncode == 0, run.stdout[-2000:]
    assert "implementation under test: block_allocator" in run.stdout
