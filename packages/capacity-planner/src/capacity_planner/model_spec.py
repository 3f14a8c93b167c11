"""Compatibility path: the code lives in `capacity_planner.model.spec`."""

from __future__ import annotations

from capacity_planner.model.spec import *  # noqa: F403
from capacity_planner.model.spec import __all__ as __all__
