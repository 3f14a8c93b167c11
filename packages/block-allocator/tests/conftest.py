"""Test configuration: the kit's fixtures (a mini-build learner, planted bugs) are importable."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures"))
