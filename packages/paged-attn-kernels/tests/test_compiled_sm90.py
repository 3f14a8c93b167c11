"""The decode kernel compiled for sm_90a on a machine without a GPU: the compiler facts that
docs/GPU.md's "Built, not yet timed" table and the two switches it describes rest on.

Triton compiles for a GPU target without one, with its bundled ptxas. This process runs the
kernels interpreted (``TRITON_INTERPRET=1`` without CUDA), so the compile runs in a child
process with the interpreter off, through ``benchmarks/decode_ptx.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="needs torch")
pytest.importorskip("triton", reason="needs triton")

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
pytestmark = [
    pytest.mark.triton,
    pytest.mark.slow,
    pytest.mark.skipif(
        not (BENCHMARKS / "decode_ptx.py").exists(), reason="needs the source tree's benchmarks/"
    ),
]

_CHILD = """
import dataclasses, json, sys, torch
sys.path.insert(0, sys.argv[1])
import decode_ptx as dp
from paged_attn_kernels import _triton_decode as td
bf16 = td.launch_config(torch.bfloat16, torch.bfloat16, 128, 4, False)
fp8 = td.launch_config(torch.bfloat16, torch.float8_e4m3fn, 128, 4, False)
early = dataclasses.replace(fp8, early_value_cvt=True)
step = lambda cfg: dataclasses.replace(cfg, merge_step=8)
print(json.dumps({
    "fp8": dp.measure(fp8, "*fp8e4nv", 1),
    "fp8_early": dp.measure(early, "*fp8e4nv", 1),
    "bf16": dp.measure(bf16, "*bf16", 1),
    "bf16_merge32": dp.measure(bf16, "*bf16", 32),
    "bf16_merge32_step8": dp.measure(step(bf16), "*bf16", 32),
    "fp8_early_merge32": dp.measure(early, "*fp8e4nv", 32),
    "fp8_early_merge32_step8": dp.measure(step(early), "*fp8e4nv", 32),
}))
"""


@pytest.fixture(scope="module")
def compiled() -> dict[str, dict[str, int]]:
    env = {**os.environ, "TRITON_INTERPRET": "0"}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(BENCHMARKS)],
        env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, dict[str, int]] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_fp8_value_tile_read_bytewise_unless_converted_as_loaded(compiled) -> None:
    # the shipped fp8 launch converts V inside the operand load: byte-wide shared loads
    assert compiled["fp8"]["byte_loads"] >= 64
    assert compiled["fp8_early"]["byte_loads"] == 0
    assert compiled["fp8_early"]["instructions"] < 0.8 * compiled["fp8"]["instructions"]
    # the fp16 copy of V costs shared memory, not registers
    assert compiled["fp8_early"]["shared_bytes"] > compiled["fp8"]["shared_bytes"]
    assert compiled["fp8_early"]["registers"] < compiled["fp8"]["registers"]


def test_merge_in_steps_keeps_the_register_allocation_of_no_merge(compiled) -> None:
    # triton 3.6.0 (pinned): 126 -> 166 -> 128 registers; triton 3.7.1: 160 -> 164 -> 143
    plain = compiled["bf16"]["registers"]
    merged = compiled["bf16_merge32"]["registers"]  # the [4, 32, 128] fp32 tile at once
    assert merged > plain
    assert compiled["bf16_merge32_step8"]["registers"] < merged
    assert compiled["bf16_merge32_step8"]["registers"] <= max(plain, 128)
    assert compiled["fp8_early_merge32"]["spill_bytes"] > 0
    assert compiled["fp8_early_merge32_step8"]["spill_bytes"] == 0


def test_pipeline_depth_is_half_the_stages_after_the_block_id_stage(compiled) -> None:
    # bf16 ships 3 stages: one K/V buffer; fp8 ships 5: two (the block ids take a stage)
    assert compiled["bf16"]["kv_buffers"] == 1
    assert compiled["fp8"]["kv_buffers"] == 2
