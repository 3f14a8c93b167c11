"""Shared fixtures: the real trace folder (tests skip cleanly without it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from frag_sim import default_trace_dir


@pytest.fixture(scope="session")
def trace_dir() -> Path:
    d = default_trace_dir()
    if d is None:
        pytest.skip("shared/traces not found beside the repository (set FRAG_SIM_TRACES)")
    return d
