"""The public traces: where each comes from, its license, its checksum, and fetching it.

frag-sim ships no trace data. :data:`CATALOG` names each public file (repository, commit,
path, license, the paper to cite) with its SHA-256; :func:`fetch` downloads one into the
trace folder through a temporary file, checks the hash and only then renames it into
place, so a folder never holds a partial or altered trace. The folder is, in order:
``--trace-dir`` (the ``trace_dir`` argument), ``$FRAG_SIM_TRACE_DIR``, or the user data
folder (``platformdirs.user_data_dir("frag-sim")/traces``).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import FragSimError

__all__ = [
    "CATALOG",
    "ENV_VAR",
    "TraceChecksumError",
    "TraceInfo",
    "TraceNotFoundError",
    "fetch",
    "resolve_trace_dir",
    "sha256_of",
]

ENV_VAR = "FRAG_SIM_TRACE_DIR"

_AZURE = ("Azure/AzurePublicDataset", "b469a113cedca53ddc3bdea71a143dc4b7d8700c")
_MOONCAKE = ("kvcache-ai/Mooncake", "3b5a594133958449a1feaf1c9e0fc1b553e34a28")
_AZURE_LICENSE = "CC-BY 4.0"
_AZURE_CITE = "Patel et al., Splitwise, ISCA 2024"
_MOONCAKE_LICENSE = "Apache-2.0"
_MOONCAKE_CITE = "Qin et al., Mooncake, FAST 2025"


@dataclass(frozen=True)
class TraceInfo:
    """One public trace file, pinned to a commit of its upstream repository."""

    name: str
    file: str  # the name it has in the trace folder
    repo: str
    commit: str
    path: str  # inside the repository
    size: int  # bytes
    rows: int
    sha256: str
    license: str
    cite: str
    about: str

    @property
    def url(self) -> str:
        return f"https://raw.githubusercontent.com/{self.repo}/{self.commit}/{self.path}"


CATALOG: dict[str, TraceInfo] = {
    t.name: t
    for t in (
        TraceInfo(
            "azure_code",
            "azure2023_code.csv",
            *_AZURE,
            "data/AzureLLMInferenceTrace_code.csv",
            320_117,
            8_819,
            "54e9a6d2a4bd06ba1e060304b900abbc74cbea53de96506e60fe5bb4f2277fb6",
            _AZURE_LICENSE,
            _AZURE_CITE,
            "Azure LLM inference, coding, one hour of 2023-11-16",
        ),
        TraceInfo(
            "azure_conv",
            "azure2023_conv.csv",
            *_AZURE,
            "data/AzureLLMInferenceTrace_conv.csv",
            719_188,
            19_366,
            "2f1e5b666d4e3055fdbba98598ce2ec307767b9064e03e2fa46676dbcc7d0bf8",
            _AZURE_LICENSE,
            _AZURE_CITE,
            "Azure LLM inference, conversation, one hour of 2023-11-16",
        ),
        TraceInfo(
            "mooncake_conversation",
            "mooncake_fast25_conversation.jsonl",
            *_MOONCAKE,
            "FAST25-release/traces/conversation_trace.jsonl",
            3_029_533,
            12_031,
            "b8cbb061a85206d729d91cdc2981f43c9e0d99209dce588d3af5f7934408b9df",
            _MOONCAKE_LICENSE,
            _MOONCAKE_CITE,
            "Kimi conversation traffic, one hour, 512-token prefix-block hashes",
        ),
        TraceInfo(
            "mooncake_synthetic",
            "mooncake_fast25_synthetic.jsonl",
            *_MOONCAKE,
            "FAST25-release/traces/synthetic_trace.jsonl",
            1_136_313,
            3_993,
            "bd070915a98fc0ed264d7cfef2ce746002eb3076a695ec31ba2674c0111ec131",
            _MOONCAKE_LICENSE,
            _MOONCAKE_CITE,
            "multi-turn sessions from public datasets, Poisson arrivals, prefix hashes",
        ),
    )
}


class TraceNotFoundError(FragSimError, FileNotFoundError):
    """A catalogued trace is not in the trace folder; the message names the fetch command."""

    def __init__(self, name: str, folder: Path) -> None:
        info = CATALOG[name]
        super().__init__(
            f"trace {name!r} ({info.file}) is not in {folder}; fetch it with "
            f"'frag-sim traces fetch {name}', or point --trace-dir / ${ENV_VAR} at a "
            f"folder that holds it"
        )


class TraceChecksumError(FragSimError):
    """A downloaded file does not have the catalogued SHA-256 (nothing was kept)."""


def resolve_trace_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The trace folder: ``explicit``, else ``$FRAG_SIM_TRACE_DIR``, else the user data one."""
    if explicit:
        return Path(explicit)
    env = os.environ.get(ENV_VAR) or os.environ.get("FRAG_SIM_TRACES")  # the older name
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir("frag-sim")) / "traces"


def sha256_of(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch(
    name: str,
    trace_dir: str | os.PathLike[str] | None = None,
    *,
    url: str | None = None,
    force: bool = False,
    on_bytes: Callable[[int], None] | None = None,
    timeout_s: float = 60.0,
) -> Path:
    """Download trace ``name`` into the trace folder, check its SHA-256, return its path.

    ``url`` overrides the catalogued upstream address (a mirror, or a ``file://`` URL).
    A file already present with the right hash is kept unless ``force``. ``on_bytes`` is
    called with each chunk's size (progress). On a wrong hash or a failed download the
    folder is left as it was and :class:`TraceChecksumError` / ``OSError`` is raised.
    """
    if name not in CATALOG:
        raise FragSimError(f"unknown trace {name!r}; known: {', '.join(CATALOG)}")
    info = CATALOG[name]
    folder = resolve_trace_dir(trace_dir)
    target = folder / info.file
    if target.is_file() and not force and sha256_of(target) == info.sha256:
        return target
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{info.file}.", suffix=".part", dir=folder)
    try:
        h = hashlib.sha256()
        with (
            os.fdopen(fd, "wb") as out,
            urllib.request.urlopen(url or info.url, timeout=timeout_s) as resp,
        ):
            for block in iter(lambda: resp.read(1 << 16), b""):
                out.write(block)
                h.update(block)
                if on_bytes is not None:
                    on_bytes(len(block))
        got = h.hexdigest()
        if got != info.sha256:
            raise TraceChecksumError(
                f"{name}: SHA-256 {got} does not match the catalogue's {info.sha256}; "
                f"nothing was written to {folder}"
            )
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
