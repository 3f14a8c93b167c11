"""Shared fixtures: the real trace folder (tests skip cleanly without it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from frag_sim import default_trace_dir


@pytest.fixture(scope="session")
def trace_dir() -> Path:
    d = default_trace_dir()
    if d is None:
        pytest.skip("no trace folder: set FRAG_SIM_TRACE_DIR or run 'frag-sim traces fetch all'")
    return d
