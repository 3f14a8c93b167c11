"""Compatibility path: the code lives in `capacity_planner.accounting.kv_config`."""

from __future__ import annotations

from capacity_planner.accounting.kv_config import *  # noqa: F403
from capacity_planner.accounting.kv_config import __all__ as __all__
