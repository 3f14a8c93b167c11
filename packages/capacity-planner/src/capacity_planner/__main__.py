"""`python -m capacity_planner` -> the `capacity-planner` console script."""

from capacity_planner.cli import main

raise SystemExit(main())
