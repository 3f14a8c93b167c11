"""``python -m paged_attn_kernels.kit --impl MODULE [--lab lab06|lab04]``: grade a learner."""

import sys

from paged_attn_kernels.kit import main

sys.exit(main())
