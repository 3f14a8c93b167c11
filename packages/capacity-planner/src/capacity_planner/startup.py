"""Compatibility path: the code lives in `capacity_planner.accounting.startup`."""

from __future__ import annotations

from capacity_planner.accounting.startup import *  # noqa: F403
from capacity_planner.accounting.startup import __all__ as __all__
