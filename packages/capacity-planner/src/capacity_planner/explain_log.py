"""Compatibility name of `capacity_planner.explain` (the explain-log command).

`python -m capacity_planner.explain_log FILE` runs the command alone.
"""

from __future__ import annotations

from capacity_planner.explain import *  # noqa: F403
from capacity_planner.explain import __all__ as __all__
from capacity_planner.explain import main

if __name__ == "__main__":
    raise SystemExit(main())
