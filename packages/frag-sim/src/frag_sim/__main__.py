"""``python -m frag_sim`` = the ``frag-sim`` console script."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
