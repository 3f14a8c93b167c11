"""The records: real vLLM start-ups from public issues, pull requests and repository files.

`data/vllm_startups.json` (shipped in the wheel) holds, per start-up, the source, the vLLM
release and engine, the model, GPU and stated settings, the figures the log printed
(`Logged`) and the text they were copied from (`quote`). `load_records` refuses a malformed
record by name; `formula_for` maps a release to the planner's `--vllm-version` regime, so
every record is carved with the arithmetic of its own release.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from capacity_planner import CapacityPlannerError, EngineSettings, ModelSpec
from capacity_planner.accounting.versions import get_formula

__all__ = [
    "ISSUE_RECORDS",
    "MISMATCH_KINDS",
    "IssueRecord",
    "Logged",
    "Source",
    "formula_for",
    "load_records",
]

_DATA = "data"
_PROJECTS = {"vllm-project/vllm": "vLLM", "vllm-project/recipes": "vLLM recipes"}
_KINDS = ("issue", "PR", "file")
# why a comparison does not hold: the carve from logged memory, end to end, not comparable,
# only the start-up outcome, or a cold start outside the planner's cold band
MISMATCH_KINDS = ("given", "e2e", "no_e2e", "verdict", "cold_band")


@dataclass(frozen=True)
class Source:
    """Where a record was published: an issue or PR (by number) or a file of a repository."""

    repo: str
    kind: str  # "issue" | "PR" | "file"
    where: str
    url: str
    number: int | None = None  # issue / PR number
    path: str | None = None  # a file's path in `repo` (kind "file")

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise ValueError(f"source kind must be one of {_KINDS}, got {self.kind!r}")
        if (self.kind == "file") != (self.path is not None) or (
            self.kind != "file" and self.number is None
        ):
            raise ValueError(
                f"source {self.url}: an issue or PR needs `number`, a file needs `path`"
            )

    @property
    def cite(self) -> str:
        """'vLLM issue #10517', 'LMCache issue #1739', 'Burbanit0/Vote-App file `x.md`'."""
        if self.kind == "file":
            return f"{self.repo} `{self.path}`"
        project = _PROJECTS.get(self.repo, self.repo.split("/")[1])
        return f"{project} {self.kind} #{self.number}"


@dataclass(frozen=True)
class Logged:
    """Figures as the source printed them (GiB figures as vLLM's `%.2f`)."""

    available_gib: float | None = None
    blocks: int | None = None
    tokens: int | None = None
    cpu_blocks: int | None = None
    concurrency: str | None = None
    needed_gib: str | None = None  # kept as text: releases print 2 or 1 decimals
    estimated_max_len: int | None = None
    error_tokens: int | None = None
    weights_gib: float | None = None
    # the memory breakdown of newer releases ("Actual usage is X GiB for consumed memory
    # (weights + non-torch), Y GiB for peak activation, and Z GiB for CUDAGraph memory")
    consumed_gib: float | None = None
    peak_activation_gib: float | None = None
    cuda_graph_gib: float | None = None
    # "CUDA graph pool memory: X GiB (actual), Y GiB (estimated)": from 0.28 the printed peak
    # activation includes Y (`gpu_worker.py`: transient peak + applied graph estimate)
    cuda_graph_estimate_gib: float | None = None


@dataclass(frozen=True)
class IssueRecord:
    """One start-up as a public issue or PR logged it."""

    key: str
    source: Source
    release: str
    engine: str
    model: str  # catalog name, or "config:<file>" under records_data/
    gpu: str | None  # catalog name or a size such as "24564MiB"; None: not stated
    settings: dict[str, Any]
    logged: Logged
    started: bool | None = None  # the start-up came up (False: refused or out of memory)
    quote: tuple[str, ...] = ()
    served_model: str = ""
    note: str = ""
    # why a comparison is not expected to hold: "given" (carve from the logged memory),
    # "e2e" (end-to-end miss), "no_e2e" (end to end not comparable: no GPU named, ...),
    # "verdict" (the outcome), "cold_band" (a cold start outside the planner's cold band)
    mismatch: dict[str, str] = field(default_factory=dict)
    # the torch.compile cache of that start ("cold": compiled in the worker; "warm": loaded
    # from the cache); records sharing a `pair` are one configuration started both ways
    compile_cache: str | None = None
    pair: str | None = None

    def __post_init__(self) -> None:
        if self.compile_cache not in (None, "cold", "warm"):
            raise ValueError(
                f"record {self.key}: compile_cache must be 'cold', 'warm' or absent, "
                f"got {self.compile_cache!r}"
            )
        if not set(self.mismatch) <= set(MISMATCH_KINDS):
            raise ValueError(
                f"record {self.key}: mismatch kinds must be among {MISMATCH_KINDS}, "
                f"got {sorted(self.mismatch)}"
            )
        if self.pair is not None and self.compile_cache is None:
            raise ValueError(f"record {self.key}: a cold/warm `pair` needs `compile_cache`")

    @property
    def issue(self) -> str:
        return self.source.cite

    @property
    def formula(self) -> str:
        return formula_for(self.release, self.engine)

    def engine_settings(self) -> EngineSettings:
        """The stated settings over the defaults of that release's regime.

        The release number itself is passed where it maps to the record's regime, so terms
        that changed inside a regime (the 0.11-0.12 encoder outputs) follow the release.
        """
        formula = get_formula(self.formula)
        base: dict[str, Any] = {
            "gpu_memory_utilization": getattr(formula, "default_gpu_memory_utilization", 0.9),
            "block_size": getattr(formula, "default_block_size", 16),
        }
        version = self.formula
        match = re.match(r"\d+\.\d+(?:\.\d+)?", self.release)
        if match is not None and get_formula(match.group(0)).name == self.formula:
            version = match.group(0)
        return EngineSettings(**{**base, **self.settings, "vllm_version": version})

    def model_spec(self) -> ModelSpec:
        if not self.model.startswith("config:"):
            return ModelSpec.from_name(self.model)
        name = self.model.removeprefix("config:")
        data = json.loads(
            resources.files(__package__).joinpath(_DATA).joinpath(name).read_text("utf-8")
        )
        return ModelSpec.from_hf_config(data, name=self.served_model or name, source=name)


def formula_for(release: str, engine: str) -> str:
    """The planner's `--vllm-version` regime for a release and engine.

    V0-engine logs take `v0` whatever the release (0.8 still ran the V0 worker). For V1 the
    planner's own release table decides where it has one; otherwise 0.7-0.8 is early V1,
    0.9-0.20 the hybrid manager and 0.21 on the CUDA-graph-profiling regime.
    """
    if engine.startswith("V0"):
        return "v0"
    match = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", release)
    if match is None:  # release not stated: the V1 manager of 0.9-0.20
        return "v1"
    try:
        name = get_formula(match.group(0)).name
    except CapacityPlannerError:  # a planner without a release table
        version = (int(match.group(1)), int(match.group(2)))
        if version < (0, 9):
            return "v1-0.8"
        return "v1" if version < (0, 21) else "v1-graphs"
    return "v1-0.8" if name == "v0" else name  # V1 before 0.7.3 printed as early V1


_RECORD_KEYS = {f.name for f in dataclasses.fields(IssueRecord)}
_LOGGED_KEYS = {f.name for f in dataclasses.fields(Logged)}
_SOURCE_KEYS = {f.name for f in dataclasses.fields(Source)}
_SOURCE_REQUIRED = {"repo", "kind", "where", "url"}


def _check_keys(what: str, data: Any, allowed: set[str], required: set[str]) -> None:
    if not isinstance(data, dict):
        raise ValueError(f"{what}: expected a JSON object, got {type(data).__name__}")
    unknown, missing = set(data) - allowed, required - set(data)
    if unknown or missing:
        raise ValueError(
            f"{what}: unknown fields {sorted(unknown)}, missing fields {sorted(missing)}; "
            f"allowed: {sorted(allowed)}"
        )


def load_records(text: str) -> tuple[IssueRecord, ...]:
    """Records from the JSON text of `vllm_startups.json`; a malformed record names itself."""
    top = json.loads(text)
    _check_keys("records file", top, {"about", "records"}, {"records"})
    out = []
    for i, raw in enumerate(top["records"]):
        what = f"record {i} ({raw.get('key', '?') if isinstance(raw, dict) else raw!r})"
        _check_keys(what, raw, _RECORD_KEYS, {"key", "source", "release", "engine", "model"})
        _check_keys(f"{what}.source", raw["source"], _SOURCE_KEYS, _SOURCE_REQUIRED)
        _check_keys(f"{what}.logged", raw.get("logged", {}), _LOGGED_KEYS, set())
        fields = {k: v for k, v in raw.items() if k not in ("source", "logged", "quote")}
        out.append(
            IssueRecord(
                source=Source(**raw["source"]),
                logged=Logged(**raw.get("logged", {})),
                quote=tuple(raw.get("quote", ())),
                **{"settings": {}, "gpu": None, **fields},
            )
        )
    keys = [r.key for r in out]
    if len(set(keys)) != len(keys):
        raise ValueError(
            f"record keys must be unique: {sorted(k for k in keys if keys.count(k) > 1)}"
        )
    return tuple(out)


ISSUE_RECORDS: tuple[IssueRecord, ...] = load_records(
    resources.files(__package__).joinpath(_DATA).joinpath("vllm_startups.json").read_text("utf-8")
)
