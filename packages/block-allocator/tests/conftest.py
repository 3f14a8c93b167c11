"""Test configuration: ``--impl`` selects the implementation under test (conformance kit)."""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--impl",
        default=None,
        help="module to grade instead of block_allocator (same as BLOCK_ALLOCATOR_IMPL=...)",
    )


def pytest_configure(config: pytest.Config) -> None:
    # Runs before test modules are imported, so _allocator_impl sees the choice.
    chosen = config.getoption("--impl")
    if chosen:
        os.environ["BLOCK_ALLOCATOR_IMPL"] = chosen


def pytest_report_header(config: pytest.Config) -> str:
    name = os.environ.get("BLOCK_ALLOCATOR_IMPL") or "block_allocator"
    return f"block-allocator implementation under test: {name}"
