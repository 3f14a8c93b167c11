from __future__ import annotations

import doctest
import subprocess
import sys

import frag_sim


def test_public_names_resolve_and_docstring_example_runs() -> None:
    for name in frag_sim.__all__:
        assert getattr(frag_sim, name) is not None, name
    assert doctest.testmod(frag_sim).failed == 0


def test_core_import_does_not_pull_matplotlib() -> None:
    code = "import sys, frag_sim; sys.exit('matplotlib' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
