"""Every build, test, lint and demo target of the monorepo.

One session per package, each in a fresh virtualenv holding only that package and the
packages below it (dependencies point downward only: block-allocator <- everything else).
`nox` runs the default set (all tests, lint, typecheck); `nox -s demo` runs the main demo;
`nox -s bench` runs every benchmark script (not in the default set).
"""

from __future__ import annotations

from pathlib import Path

import nox

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "venv"
nox.options.reuse_venv = "yes"
nox.options.sessions = ["lint", "typecheck", "allocator", "frag_sim", "planner", "kernels"]

ROOT = Path(__file__).parent
CONSTRAINTS = ("-c", str(ROOT / "constraints.txt"))
ALLOCATOR = "packages/block-allocator"
FRAG_SIM = "packages/frag-sim"
PLANNER = "packages/capacity-planner"
KERNELS = "packages/paged-attn-kernels"
ALL_PACKAGES = (ALLOCATOR, FRAG_SIM, PLANNER, KERNELS)
LINT_TOOLS = ("ruff>=0.6",)
TYPE_TOOLS = ("mypy>=1.10",)


def _install_chain(session: nox.Session, *specs: str) -> None:
    """Install the allocator and the given packages (editable) in one pip call.

    One call lets pip satisfy `block-allocator` from the local sibling instead of PyPI.
    """
    args: list[str] = ["-e", f"{ALLOCATOR}[test]"]
    for spec in specs:
        args += ["-e", spec]
    session.install(*CONSTRAINTS, *args)


def _pytest(session: nox.Session, package: str) -> None:
    session.chdir(ROOT / package)
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def allocator(session: nox.Session) -> None:
    """block-allocator: pure Python, no runtime dependencies."""
    _install_chain(session)
    _pytest(session, ALLOCATOR)


@nox.session
def frag_sim(session: nox.Session) -> None:
    """frag-sim on top of block-allocator (numpy, matplotlib)."""
    _install_chain(session, f"{FRAG_SIM}[plot,test]")
    _pytest(session, FRAG_SIM)


@nox.session
def planner(session: nox.Session) -> None:
    """capacity-planner on top of block-allocator (no heavy dependencies)."""
    _install_chain(session, f"{PLANNER}[test]")
    _pytest(session, PLANNER)


@nox.session
def kernels(session: nox.Session) -> None:
    """paged-attn-kernels: numpy, numba and Triton (interpreted on CPU-only machines)."""
    # torch first, pinned: the CI machines carry a local CPU wheel of exactly this version.
    session.install(*CONSTRAINTS, "torch")
    _install_chain(session, f"{KERNELS}[numba,triton,test]")
    _pytest(session, KERNELS)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff check and ruff format --check over the whole repository."""
    session.install(*LINT_TOOLS)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy (strict, root pyproject config) over every package's src/."""
    session.install(*TYPE_TOOLS)
    _install_chain(session, f"{FRAG_SIM}[plot]", PLANNER, KERNELS)
    session.run("mypy", *(f"{pkg}/src" for pkg in ALL_PACKAGES))


@nox.session(default=False)
def demo(session: nox.Session) -> None:
    """The main demo: allocate -> share/evict -> simulate -> plan -> attend, CPU only."""
    _install_chain(session, f"{FRAG_SIM}[plot]", PLANNER, f"{KERNELS}[numba]")
    session.run("python", str(ROOT / "demo.py"), *session.posargs)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Every package's benchmark scripts (CPU); prints tables with in-process ratios."""
    _install_chain(session, f"{FRAG_SIM}[plot]", PLANNER, f"{KERNELS}[numba]")
    for pkg in ALL_PACKAGES:
        for script in sorted((ROOT / pkg / "benchmarks").glob("bench_*.py")):
            if script.name.startswith("bench_gpu"):
                continue  # GPU benchmarks need CUDA; see the kernels README
            session.run("python", str(script), *session.posargs)
