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


def test_stage_packages_keep_the_public_module_paths() -> None:
    import frag_sim.cli
    import frag_sim.experiments
    import frag_sim.workload

    # The subpackages that replaced modules of the same name export what those did.
    assert frag_sim.workload.Workload is frag_sim.Workload
    assert frag_sim.workload.SyntheticWorkload is frag_sim.SyntheticWorkload
    assert frag_sim.experiments.run_experiment is frag_sim.run_experiment
    assert set(frag_sim.experiments.EXPERIMENTS) >= {"lab02", "fig2", "fig13", "groups"}
    # [project.scripts] frag-sim = "frag_sim.cli:main"
    assert callable(frag_sim.cli.main)
    out = subprocess.run(
        [sys.executable, "-m", "frag_sim", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0 and frag_sim.__version__ in out.stdout
