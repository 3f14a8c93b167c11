"""Test configuration: the kit's fixtures are importable and the markers are registered.

The markers are also in ``pyproject.toml``; registering them here keeps a run from an
installed wheel, outside the source tree, free of unknown-marker warnings.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))

MARKERS = {
    "slow": "takes more than a few seconds",
    "lab01": "Phase 02 lab-01 and the Phase 02 mini-build core (block, free queue, pool, hashing)",
    "lab05": "Phase 02 lab-05 share-and-evict biography (KVCacheManager)",
    "cow": "copy-on-write fork (Phase 02 exercises, ex. 7; the 300-line capstone, step 04)",
    "extended": "behaviour beyond the course (events, priorities, free orders, error classes)",
}


def pytest_configure(config: pytest.Config) -> None:
    for name, doc in MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {doc}")
