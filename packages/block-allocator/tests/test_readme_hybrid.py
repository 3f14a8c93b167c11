"""The README's hybrid, CPU-tier and residency examples run and say what they claim."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.extended

README = Path(__file__).resolve().parents[1] / "README.md"


def _section_code(title: str) -> dict[str, Any]:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    code = re.search(r"```python\n(.*?)```", text[start:end], re.S)
    assert code is not None, title
    scope: dict[str, Any] = {}
    exec(compile(code.group(1), str(README), "exec"), scope)
    return scope


def test_hybrid_example() -> None:
    s = _section_code("Hybrid models: several KV-cache groups in one pool")
    assert s["full_ids"] == list(range(1, 14))
    assert s["swa_ids"] == [0] * 8 + [22, 23, 24, 25, 26]
    assert s["num_hit"] == 176
    assert [b.block_id for b in s["hits"][1]] == [0] * 7 + [21, 22, 23, 24]


def test_cpu_tier_example() -> None:
    s = _section_code("A CPU offload tier")
    stats = s["stats"]
    assert (stats.requests, stats.queries, stats.gpu_hits, stats.cpu_hits) == (3, 51, 0, 16)
    assert (stats.stores, stats.loads, stats.cpu_evictions) == (8, 4, 0)
    assert (stats.cpu_num_blocks, stats.cpu_capacity) == (8, 64)


def test_residency_example(capsys: pytest.CaptureFixture[str]) -> None:
    s = _section_code("Residency statistics")
    gpu, cpu = s["gpu"], s["cpu"]
    assert (gpu.lifetime.count, gpu.lifetime.mean) == (16, 1.0)
    assert cpu.reuse_gap.bucket_edges() == [(2, 3, 4)] and cpu.reuse_gap.total == 8
    assert capsys.readouterr().out == "16 1.0 [(2, 3, 4)]\n"
