"""``python -m capacity_planner.kit --impl MODULE``: grade a learner's lab-03 module."""

import sys

from capacity_planner.kit import main

sys.exit(main())
