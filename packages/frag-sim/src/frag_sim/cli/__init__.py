"""The command-line stage: ``frag-sim`` and ``python -m frag_sim``.

``main`` builds the parser and runs ``run``, ``sweep`` and ``experiment``; ``plot`` and
``traces`` are the commands of the same names; ``util`` holds what they share (config
files, tables, output files, progress on stderr). Every failure is one
``frag-sim: error:`` line and exit status 2, never a traceback.
"""

from __future__ import annotations

from .main import HEADLINE, build_parser, main

__all__ = ["HEADLINE", "build_parser", "main"]
