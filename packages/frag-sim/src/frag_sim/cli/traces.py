"""``frag-sim traces``: list the public traces (sources, licenses) and fetch them."""

from __future__ import annotations

import argparse

from ..errors import FragSimError
from ..workload.catalog import CATALOG, fetch, resolve_trace_dir, sha256_of
from .util import Progress

__all__ = ["cmd_traces"]


def cmd_traces(a: argparse.Namespace) -> int:
    folder = resolve_trace_dir(a.trace_dir)
    if a.action == "list":
        if a.names:
            raise FragSimError("'frag-sim traces list' takes no names")
        print(f"trace folder: {folder}")
        for info in CATALOG.values():
            path = folder / info.file
            state = "present" if path.is_file() else "absent"
            if path.is_file() and a.verify:
                state = "verified" if sha256_of(path) == info.sha256 else "CHECKSUM MISMATCH"
            print(f"{info.name}  [{state}]  {info.rows:,} requests, {info.size:,} bytes")
            print(f"    {info.about}")
            print(f"    source: {info.repo} @ {info.commit[:12]}, {info.path}")
            print(f"    license: {info.license}; cite {info.cite}")
        absent = [n for n, i in CATALOG.items() if not (folder / i.file).is_file()]
        if absent:
            print(f"fetch the absent ones with: frag-sim traces fetch {' '.join(absent)}")
        return 0
    names = list(CATALOG) if a.names == ["all"] else a.names
    if not names:
        raise FragSimError("name the traces to fetch (or 'all'): " + ", ".join(CATALOG))
    unknown = [n for n in names if n not in CATALOG]
    if unknown:
        raise FragSimError(f"unknown trace(s) {unknown}; known: {', '.join(CATALOG)}")
    if a.url and len(names) != 1:
        raise FragSimError("--url replaces one trace's address: name exactly one trace")
    for n in names:
        with Progress(f"fetch {n}", CATALOG[n].size, unit="B") as bar:
            path = fetch(n, folder, url=a.url, force=a.force, on_bytes=bar.advance)
        print(f"{n}: {path} (SHA-256 verified)")
    return 0
