"""The README's examples run and say what they claim."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"

pytestmark = [
    pytest.mark.extended,
    pytest.mark.skipif(
        not README.exists(), reason="README.md is not next to tests/ (run outside the source tree)"
    ),
]


def test_quick_start_runs() -> None:
    code = re.search(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), re.S)
    assert code is not None
    scope: dict[str, object] = {}
    exec(compile(code.group(1), str(README), "exec"), scope)
    mgr = scope["mgr"]
    assert mgr.get_block_ids("r0-beam1") == [1, 2, 3, 4, 5, 6, 7]  # type: ignore[attr-defined]


def test_block_table_diagram_numbers() -> None:
    from block_allocator import BlockTable

    table = BlockTable(16, [7, 2, 9])
    assert table.translate(37) == (9, 5) and table.slot(37) == 149
    assert table.slot_mapping(36, 2) == [148, 149]
