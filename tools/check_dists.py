"""Check the sdists and wheels that `nox -s build` wrote: what a release would upload.

Every distribution must carry the Apache-2.0 LICENSE (byte-identical to the root one), a
wheel must declare its licence expression and the Python versions we test, ship `py.typed`,
and the version in its metadata must be the one `__version__` reports once installed
(both come from the package's pyproject). The allocator's wheel must carry its
conformance kit, which teaching repos run from the installed package.

Usage: python tools/check_dists.py DIST_DIR REPO_ROOT
"""

from __future__ import annotations

import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

PACKAGES = {
    "block_allocator": "block-allocator",
    "frag_sim": "frag-sim",
    "capacity_planner": "capacity-planner",
    "paged_attn_kernels": "paged-attn-kernels",
}
PYTHONS = ("3.10", "3.11", "3.12", "3.13")


def check_wheel(path: Path, license_text: bytes) -> list[str]:
    problems: list[str] = []
    module = path.name.split("-")[0]
    with zipfile.ZipFile(path) as wheel:
        names = wheel.namelist()
        licenses = [n for n in names if n.endswith(".dist-info/licenses/LICENSE")]
        if not licenses:
            problems.append("no LICENSE under .dist-info/licenses/")
        elif wheel.read(licenses[0]) != license_text:
            problems.append("LICENSE differs from the repository's")
        meta_name = next(n for n in names if n.endswith(".dist-info/METADATA"))
        meta = Parser().parsestr(wheel.read(meta_name).decode())
        if meta.get("License-Expression") != "Apache-2.0":
            problems.append(f"License-Expression is {meta.get('License-Expression')!r}")
        classifiers = set(meta.get_all("Classifier") or [])
        for version in PYTHONS:
            if f"Programming Language :: Python :: {version}" not in classifiers:
                problems.append(f"no classifier for Python {version}")
        if f"{module}/py.typed" not in names:
            problems.append("no py.typed")
        if module == "block_allocator" and not any(n.startswith(f"{module}/kit/") for n in names):
            problems.append("the conformance kit (block_allocator/kit/) is not in the wheel")
    return problems


def check_sdist(path: Path, license_text: bytes) -> list[str]:
    with tarfile.open(path) as sdist:
        members = [m for m in sdist.getmembers() if m.name.count("/") == 1]
        license_member = next((m for m in members if m.name.endswith("/LICENSE")), None)
        if license_member is None:
            return ["no LICENSE at the top of the sdist"]
        extracted = sdist.extractfile(license_member)
        if extracted is None or extracted.read() != license_text:
            return ["LICENSE differs from the repository's"]
    return []


def check_release_workflow(root: Path) -> list[str]:
    """The tag workflow must know every package and publish through trusted publishing."""
    workflow = (root / ".github" / "workflows" / "release.yml").read_text()
    problems = [
        f"release.yml has no tag pattern for {dist}"
        for dist in PACKAGES.values()
        if f'"{dist}-v*"' not in workflow
    ]
    if "id-token: write" not in workflow or "pypa/gh-action-pypi-publish" not in workflow:
        problems.append("release.yml does not publish through trusted publishing")
    return problems


def check_changelogs(root: Path) -> list[str]:
    """Every package keeps a CHANGELOG.md with an entry for the version it declares."""
    problems = []
    for dist in PACKAGES.values():
        folder = root / "packages" / dist
        version = next(
            line.split('"')[1]
            for line in (folder / "pyproject.toml").read_text().splitlines()
            if line.startswith("version = ")
        )
        changelog = folder / "CHANGELOG.md"
        if not changelog.is_file() or f"## {version}" not in changelog.read_text():
            problems.append(f"{dist}: CHANGELOG.md has no entry for {version}")
    return problems


def main(argv: list[str]) -> int:
    dist, root = Path(argv[1]), Path(argv[2])
    license_text = (root / "LICENSE").read_bytes()
    failures = 0
    seen: set[tuple[str, str]] = set()
    for path in sorted(dist.iterdir()):
        if path.suffix == ".whl":
            problems, kind = check_wheel(path, license_text), "wheel"
        elif path.name.endswith(".tar.gz"):
            problems, kind = check_sdist(path, license_text), "sdist"
        else:
            continue
        module = path.name.split("-")[0].replace("-", "_")
        seen.add((module, kind))
        for problem in problems:
            print(f"{path.name}: {problem}")
        failures += len(problems)
        print(f"{path.name}: {'ok' if not problems else 'FAILED'}")
    for module in PACKAGES:
        for kind in ("wheel", "sdist"):
            if (module, kind) not in seen:
                print(f"missing {kind} of {PACKAGES[module]}")
                failures += 1
    for problem in check_release_workflow(root) + check_changelogs(root):
        print(problem)
        failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
