"""``python -m frag_sim.kit --impl MODULE``: grade a learner's lab-02 module."""

import sys

from frag_sim.kit import main

sys.exit(main())
