"""Installing and importing the planner pulls in no heavy dependency."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_only_runtime_dependency_is_block_allocator() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    deps = re.search(r"^dependencies = \[(.*?)\]", text, re.M | re.S)
    assert deps is not None
    assert re.fullmatch(r'"block-allocator[^",]*(,[^",]*)?"', deps.group(1).strip())
    assert 'capacity-planner = "capacity_planner.cli:main"' in text


def test_import_and_cli_do_not_load_heavy_modules() -> None:
    code = (
        "import sys, capacity_planner, capacity_planner.cli, capacity_planner.records;"
        "capacity_planner.cli.build_parser();"
        "heavy = {'numpy', 'torch', 'matplotlib', 'numba', 'triton'} & set(sys.modules);"
        "print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_api_is_exported() -> None:
    import capacity_planner

    for name in capacity_planner.__all__:
        assert hasattr(capacity_planner, name), name
