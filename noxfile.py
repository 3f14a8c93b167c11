"""Every build, test, lint and demo target of the monorepo.

Each package session tests what a user installs: it builds that package's wheel (and the
allocator's, which every other package depends on) into a wheelhouse, installs them
non-editable into a fresh virtualenv with `pip install --find-links <wheelhouse> <name>`,
and runs the package's tests from outside the source tree, so a file missing from a wheel
fails the run. The pure-Python packages run on every interpreter from 3.10 to 3.13 that
the machine has; a missing one is reported, never skipped silently on CI.

`nox` runs the default set (lint, typecheck, every package, the builds and the install
paths); `nox -s demo` runs the demo; `nox -s bench` every CPU benchmark.
"""

from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path

import nox

nox.needs_version = ">=2025.2.9"
nox.options.default_venv_backend = "venv"
nox.options.reuse_venv = "yes"
# A CI run must never pass because an interpreter was missing (nox also does this when
# the CI variable is set; say it here so a local `nox` behaves the same way).
nox.options.error_on_missing_interpreters = True
nox.options.sessions = [
    "lint",
    "typecheck",
    "allocator",
    "frag_sim",
    "planner",
    "kernels",
    "build",
    "install_paths",
]

ROOT = Path(__file__).parent
CONSTRAINTS = ("-c", str(ROOT / "constraints.txt"))
ALLOCATOR = "packages/block-allocator"
FRAG_SIM = "packages/frag-sim"
PLANNER = "packages/capacity-planner"
KERNELS = "packages/paged-attn-kernels"
ALL_PACKAGES = (ALLOCATOR, FRAG_SIM, PLANNER, KERNELS)
DIST_NAMES = {
    ALLOCATOR: ("block-allocator", "block_allocator"),
    FRAG_SIM: ("frag-sim", "frag_sim"),
    PLANNER: ("capacity-planner", "capacity_planner"),
    KERNELS: ("paged-attn-kernels", "paged_attn_kernels"),
}
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
# The kernels run on one Python: the pinned torch is a 3 GB CUDA build per environment.
KERNELS_PYTHON = "3.11"
# triton 3.6's interpreter turns one-element arrays into Python scalars, which NumPy 2.4
# made an error (NumPy 2.3 warns); the interpreted tests therefore run on NumPy < 2.4.
INTERPRETER_NUMPY = "numpy<2.4"
HEAVY = ("numpy", "torch", "triton", "numba", "matplotlib")
# Run inside a planner environment: fails when any heavy library got installed.
_NO_HEAVY = (
    "import importlib.metadata as md, sys; "
    f"found = [n for n in {HEAVY!r} if any(True for _ in md.distributions(name=n))]; "
    "sys.exit(f'the planner install pulled in {found}' if found else 0)"
)
LINT_TOOLS = ("ruff>=0.6",)
TYPE_TOOLS = ("mypy>=1.10",)


def _expose_pyenv_interpreters() -> None:
    """Let nox find `python3.X` for every interpreter pyenv holds.

    pyenv's shims answer only for the versions that are switched on, so a machine with
    3.10-3.13 installed under pyenv still looks as if it had only one of them. Links to the
    real binaries, in a folder put first on PATH, make every installed version visible.
    """
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    links = ROOT / ".nox" / "interpreters"
    for version in PYTHONS:
        name = f"python{version}"
        found = sorted(glob.glob(str(pyenv_root / "versions" / f"{version}.*" / "bin" / name)))
        if not found:
            continue
        links.mkdir(parents=True, exist_ok=True)
        link = links / name
        if not link.exists():
            link.symlink_to(found[-1])
    if links.is_dir():
        os.environ["PATH"] = f"{links}{os.pathsep}{os.environ.get('PATH', '')}"


_expose_pyenv_interpreters()


def _build_wheels(session: nox.Session, *packages: str) -> Path:
    """Build the allocator's and the given packages' wheels into a fresh wheelhouse."""
    wheelhouse = Path(session.create_tmp()) / "wheelhouse"
    shutil.rmtree(wheelhouse, ignore_errors=True)
    wheelhouse.mkdir(parents=True)
    sources = [str(ROOT / pkg) for pkg in dict.fromkeys((ALLOCATOR, *packages))]
    session.run(
        "python", "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheelhouse),
        *sources,
    )  # fmt: skip
    return wheelhouse


def _install_wheels(session: nox.Session, wheelhouse: Path, *requirements: str) -> None:
    """Install requirements the way a user does: by name, from the wheelhouse.

    The versions do not change between runs, so the freshly built wheels are reinstalled
    explicitly; otherwise a reused virtualenv would keep the previous build.
    """
    session.install(*CONSTRAINTS, "--find-links", str(wheelhouse), *requirements)
    session.install("--no-deps", "--force-reinstall", *sorted(map(str, wheelhouse.glob("*.whl"))))


def _pytest_installed(session: nox.Session, package: str, *pytest_args: str) -> None:
    """Run a package's tests from outside the source tree against the installed wheel."""
    dist, module = DIST_NAMES[package]
    outside = Path(session.create_tmp()) / "outside"
    outside.mkdir(exist_ok=True)
    session.chdir(outside)
    where = session.run("python", "-c", f"import {module}; print({module}.__file__)", silent=True)
    venv = str(Path(session.virtualenv.location).resolve())
    if not isinstance(where, str) or not str(Path(where.strip()).resolve()).startswith(venv):
        session.error(f"{module} is imported from {where!r}, not from the installed {dist} wheel")
    session.run(
        "python", "-m", "pytest", str(ROOT / package / "tests"),
        "--rootdir", str(ROOT / package), "-p", "no:cacheprovider",
        *pytest_args, *session.posargs,
    )  # fmt: skip


@nox.session(python=PYTHONS)
def allocator(session: nox.Session) -> None:
    """block-allocator from its wheel: pure Python, no runtime dependencies."""
    wheelhouse = _build_wheels(session)
    _install_wheels(session, wheelhouse, "block-allocator[test]")
    _pytest_installed(session, ALLOCATOR)


@nox.session(python=PYTHONS)
def frag_sim(session: nox.Session) -> None:
    """frag-sim from its wheel, on top of block-allocator (numpy, matplotlib, Dask)."""
    wheelhouse = _build_wheels(session, FRAG_SIM)
    _install_wheels(session, wheelhouse, "frag-sim[plot,dask,test]")
    _pytest_installed(session, FRAG_SIM)


@nox.session(python=PYTHONS)
def planner(session: nox.Session) -> None:
    """capacity-planner from its wheel; its environment must hold no heavy library."""
    wheelhouse = _build_wheels(session, PLANNER)
    _install_wheels(session, wheelhouse, "capacity-planner[test]")
    session.run("python", "-c", _NO_HEAVY)
    _pytest_installed(session, PLANNER)


@nox.session(python=KERNELS_PYTHON)
def kernels(session: nox.Session) -> None:
    """paged-attn-kernels from its wheel: numpy, numba and Triton (interpreted without a GPU).

    KERNELS_TORCH chooses where torch comes from: `pinned` (default; constraints.txt's
    release from PyPI, the CUDA build, which runs on the CPU too), `cpu` (the same release
    from PyTorch's CPU-only index, without the 3 GB download), or `none` (no torch and no
    Triton: the numpy and numba tests run, the rest skip and say why).
    """
    torch_source = os.environ.get("KERNELS_TORCH", "pinned")
    extras = "numba,test"
    if torch_source == "cpu":
        session.install(
            *CONSTRAINTS, "torch", "--index-url", "https://download.pytorch.org/whl/cpu"
        )
        session.install(*CONSTRAINTS, INTERPRETER_NUMPY)
        extras += ",triton"
    elif torch_source == "pinned":
        session.install(*CONSTRAINTS, "torch", INTERPRETER_NUMPY)
        extras += ",triton"
    elif torch_source != "none":
        session.error(f"KERNELS_TORCH must be 'pinned', 'cpu' or 'none', not {torch_source!r}")
    wheelhouse = _build_wheels(session, KERNELS)
    _install_wheels(session, wheelhouse, f"paged-attn-kernels[{extras}]")
    _pytest_installed(session, KERNELS)


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
    editable = ["-e", f"{ALLOCATOR}", "-e", f"{FRAG_SIM}[plot]", "-e", PLANNER, "-e", KERNELS]
    session.install(*CONSTRAINTS, *editable)
    session.run("mypy", *(f"{pkg}/src" for pkg in ALL_PACKAGES))


@nox.session
def build(session: nox.Session) -> None:
    """sdists and wheels of all four packages into dist/, with their metadata checked."""
    session.install("build", "twine")
    dist = ROOT / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    for pkg in ALL_PACKAGES:
        session.run("python", "-m", "build", "--outdir", str(dist), str(ROOT / pkg), silent=True)
    artifacts = sorted(map(str, dist.iterdir()))
    session.run("twine", "check", "--strict", *artifacts)
    session.run("python", str(ROOT / "tools" / "check_dists.py"), str(dist), str(ROOT))


@nox.session
def install_paths(session: nox.Session) -> None:
    """Every way the README installs a package, each into a fresh environment.

    1. a wheelhouse: `pip install --find-links dist capacity-planner`;
    2. git URLs, both subdirectories in one pip call (against this checkout's HEAD through
       a `git+file://` URL: the committed state, as a user cloning it would get);
    3. the contributors' uv workspace: `uv sync --all-packages`, `uv run --package ...`.
    """
    session.install("build", "uv")
    tmp = Path(session.create_tmp())
    dist = tmp / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    for pkg in (ALLOCATOR, PLANNER):
        session.run("python", "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT / pkg),
                    silent=True)  # fmt: skip

    def fresh_venv(name: str) -> Path:
        path = tmp / name
        shutil.rmtree(path, ignore_errors=True)
        session.run("python", "-m", "venv", str(path))
        # pip 23 (bundled with Python 3.11's venv) rejects `name @ git+file:///...` URLs.
        session.run(str(path / "bin" / "python"), "-m", "pip", "install", "--quiet",
                    "--upgrade", "pip", external=True)  # fmt: skip
        return path / "bin"

    wheel_bin = fresh_venv("wheelhouse-venv")
    session.run(str(wheel_bin / "pip"), "install", "--quiet", "--find-links", str(dist),
                "capacity-planner", external=True)  # fmt: skip
    session.run(str(wheel_bin / "capacity-planner"), "--version", external=True)
    session.run(str(wheel_bin / "python"), "-c", _NO_HEAVY, external=True)

    git_bin = fresh_venv("git-venv")
    url = f"git+file://{ROOT.resolve()}"
    session.run(
        str(git_bin / "pip"), "install", "--quiet",
        f"block-allocator @ {url}#subdirectory={ALLOCATOR}",
        f"capacity-planner @ {url}#subdirectory={PLANNER}",
        external=True,
    )  # fmt: skip
    session.run(str(git_bin / "capacity-planner"), "--version", external=True)

    uv_env = {"UV_PROJECT_ENVIRONMENT": str(tmp / "uv-venv"), "UV_NO_PROGRESS": "1"}
    session.chdir(ROOT)
    session.run("uv", "sync", "--all-packages", "--quiet", env=uv_env)
    session.run("uv", "run", "--package", "capacity-planner", "capacity-planner", "--version",
                env=uv_env)  # fmt: skip
    show_version = "import block_allocator; print(block_allocator.__version__)"
    session.run("uv", "run", "--package", "block-allocator", "python", "-c", show_version,
                env=uv_env)  # fmt: skip


@nox.session(default=False)
def demo(session: nox.Session) -> None:
    """The main demo, CPU only, with exactly what demo.py imports and nothing else."""
    wheelhouse = _build_wheels(session, FRAG_SIM, PLANNER, KERNELS)
    session.log("installing the four packages and numpy, numba, matplotlib (about a minute)")
    _install_wheels(
        session, wheelhouse, "frag-sim[plot]", "capacity-planner", "paged-attn-kernels[numba]"
    )
    session.run("python", str(ROOT / "demo.py"), *session.posargs)


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Every package's benchmark scripts (CPU); prints tables with in-process ratios."""
    wheelhouse = _build_wheels(session, FRAG_SIM, PLANNER, KERNELS)
    _install_wheels(
        session, wheelhouse, "frag-sim[plot]", "capacity-planner", "paged-attn-kernels[numba]"
    )
    for pkg in ALL_PACKAGES:
        for script in sorted((ROOT / pkg / "benchmarks").glob("bench_*.py")):
            if script.name.startswith("bench_gpu"):
                continue  # GPU benchmarks need CUDA; see the kernels README
            session.run("python", str(script), *session.posargs)
