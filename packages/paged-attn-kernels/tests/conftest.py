"""Shared test setup for paged-attn-kernels.

Sets ``TRITON_INTERPRET=1`` before any Triton kernel module is imported when there is no
CUDA device (the interpreter must be chosen before ``@triton.jit`` runs), skips ``gpu``
tests without CUDA, and compiles the numba kernels once per session.
"""

from __future__ import annotations

import os

import pytest


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


HAS_CUDA = _cuda_available()
if not HAS_CUDA:
    os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if HAS_CUDA:
        return
    skip = pytest.mark.skip(reason="gpu test: no CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session", autouse=True)
def _warm_numba() -> None:
    """First numba calls compile for seconds; do it once, not inside the first test."""
    try:
        from paged_attn_kernels import _numba
    except ImportError:
        return
    _numba.warmup()
