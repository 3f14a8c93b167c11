"""Real vLLM start-ups from public issues and pull requests, and how the planner does on them.

The records are data (`records_data/vllm_startups.json`, shipped in the wheel): for each,
the source, the vLLM release, the model, GPU and stated settings, the figures its log
printed, and the quoted text they were copied from. `check_record` compares the planner
with a record three ways:

- *carve*: the logged "Available KV cache memory" is widened to every byte count that
  prints as the logged "X.XX GiB" and carved; the logged block / token count, the printed
  concurrency, "X GiB KV cache is needed" and the estimated maximum length must be among
  the results, exact to the block (`kv_cache_utils.py`: `get_kv_cache_config_from_groups`,
  `_check_enough_kv_cache_memory`; V0 `CacheEngine`);
- *count*: where only a block or token count was logged, that many blocks are carved and the
  printed tokens, concurrency, V0 error length and V0 `# CPU blocks` (the swap space carved
  into the same blocks) must come out as logged;
- *end to end*: the planner's own estimate from the model, the GPU and the settings.

`mismatch` gives, per record, why a comparison is not expected to hold; `tests/test_accuracy.py`
asserts those reasons too, so a planner change that fixes or breaks a record is noticed.
`python -m capacity_planner.records` prints the tables of `docs/ACCURACY.md`.
"""

from __future__ import annotations

import dataclasses
import json
import re
import statistics
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from capacity_planner import (
    CapacityPlan,
    CapacityPlannerError,
    EngineSettings,
    GiB,
    KVCacheConfig,
    ModelSpec,
    compute_kv_cache_config,
    logged_gib_bounds,
    plan,
    resolve_gpu,
)

__all__ = [
    "ISSUE_RECORDS",
    "IssueRecord",
    "Logged",
    "RecordCheck",
    "Source",
    "accuracy_summary",
    "check_record",
    "formula_for",
    "load_records",
    "markdown_table",
]

_DATA = "records_data"
_PROJECTS = {"vllm-project/vllm": "vLLM", "vllm-project/recipes": "vLLM recipes"}


@dataclass(frozen=True)
class Source:
    """Where a record was published: repository, issue or PR number, and which post."""

    repo: str
    kind: str  # "issue" | "PR"
    number: int
    where: str
    url: str

    @property
    def cite(self) -> str:
        """'vLLM issue #10517', 'LMCache issue #1739', ..."""
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
    quote: tuple[str, ...] = ()
    served_model: str = ""
    note: str = ""
    # why a comparison is not expected to hold: "given" (carve from the logged memory),
    # "e2e" (end-to-end miss), "no_e2e" (end to end not comparable: no GPU named, ...)
    mismatch: dict[str, str] = field(default_factory=dict)

    @property
    def issue(self) -> str:
        return self.source.cite

    @property
    def formula(self) -> str:
        return formula_for(self.release, self.engine)

    def engine_settings(self) -> EngineSettings:
        """The stated settings over the defaults of that release (utilisation 0.9, block 16)."""
        base: dict[str, Any] = {"gpu_memory_utilization": 0.9, "block_size": 16}
        return EngineSettings(**{**base, **self.settings, "vllm_version": self.formula})

    def model_spec(self) -> ModelSpec:
        if not self.model.startswith("config:"):
            return ModelSpec.from_name(self.model)
        name = self.model.removeprefix("config:")
        data = json.loads(
            resources.files(__package__).joinpath(_DATA).joinpath(name).read_text("utf-8")
        )
        return ModelSpec.from_hf_config(data, name=self.served_model or name, source=name)


def formula_for(release: str, engine: str) -> str:
    """The planner's `--vllm-version` for a release: V0 engines, then V1 by release."""
    if engine.startswith("V0"):
        return "v0"
    match = re.match(r"(\d+)\.(\d+)", release)
    if match is None:  # release not stated: the V1 manager of 0.9-0.20
        return "v1"
    version = (int(match.group(1)), int(match.group(2)))
    if version < (0, 9):
        return "v1-0.8"
    return "v1" if version < (0, 21) else "v1-graphs"


_RECORD_KEYS = {f.name for f in dataclasses.fields(IssueRecord)}
_LOGGED_KEYS = {f.name for f in dataclasses.fields(Logged)}
_SOURCE_KEYS = {f.name for f in dataclasses.fields(Source)}


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
        _check_keys(f"{what}.source", raw["source"], _SOURCE_KEYS, _SOURCE_KEYS)
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


@dataclass(frozen=True)
class RecordCheck:
    """The planner against one record; `None` where the record lacks what a check needs."""

    record: IssueRecord
    given_tokens: tuple[int, int] | None  # tokens carved from both ends of the logged GiB
    given_consistent: bool | None  # the logged count is among them
    implied_gib: float | None  # memory the logged count needs
    given_concurrency: tuple[str, ...]
    needed_gib: tuple[str, ...]  # "X GiB KV cache is needed", printed as the log prints it
    estimate_range: tuple[int, int] | None
    given_fits: bool | None
    count: KVCacheConfig | None  # the logged block count, carved
    plan: CapacityPlan | None
    plan_error: str | None
    e2e_error: float | None  # predicted / logged available memory - 1
    e2e_tokens_error: float | None  # predicted / logged tokens - 1
    weights_error: float | None

    @property
    def headline_error(self) -> float | None:
        """End-to-end error on available memory, or on tokens where only a count was logged."""
        return self.e2e_error if self.e2e_error is not None else self.e2e_tokens_error

    @property
    def count_consistent(self) -> bool | None:
        """Every figure derived from the logged count comes out as logged."""
        if self.count is None:
            return None
        c, log = self.count, self.record.logged
        return (
            (log.tokens is None or c.num_tokens == log.tokens)
            and (log.concurrency is None or f"{c.max_concurrency:.2f}" == log.concurrency)
            and (log.error_tokens is None or c.num_tokens == log.error_tokens)
            and (log.cpu_blocks is None or c.num_cpu_blocks == log.cpu_blocks)
        )


def _carve(model: ModelSpec, s: EngineSettings, num_bytes: int) -> KVCacheConfig:
    mnbt = s.max_num_batched_tokens
    if mnbt is None and s.vllm_version != "v0":
        mnbt = 8192  # `vllm serve` on a large GPU; only sliding-window usage depends on it
    return compute_kv_cache_config(
        model,
        num_bytes,
        block_size=s.block_size,
        kv_cache_dtype=s.kv_cache_dtype,
        dtype=s.dtype,
        tensor_parallel_size=s.tensor_parallel_size,
        pipeline_parallel_size=s.pipeline_parallel_size,
        max_model_len=s.max_model_len,
        max_num_batched_tokens=mnbt,
        vllm_version=s.vllm_version,
        hybrid_kv_cache_manager=s.hybrid_kv_cache_manager,
        mamba_cache_mode=s.mamba_cache_mode,
        swap_space_bytes=s.swap_space_bytes,
    )


def _logged_blocks(log: Logged, probe: KVCacheConfig) -> int | None:
    if log.blocks is not None:
        return log.blocks
    if log.tokens is not None and len(probe.groups) == 1:
        return log.tokens // probe.block_size
    return None


def _logged_tokens(log: Logged, block_size: int) -> int | None:
    if log.tokens is not None:
        return log.tokens
    if log.blocks is not None:
        return log.blocks * block_size
    return log.error_tokens


_RELEASE = re.compile(r"\d+\.\d+(?:\.\d+)?")


def _decimals(text: str) -> int:
    return len(text.split(".")[1]) if "." in text else 0


def check_record(record: IssueRecord) -> RecordCheck:
    """Carve the logged memory and count, and run the end-to-end estimate, for one record."""
    model, s, log = record.model_spec(), record.engine_settings(), record.logged
    given_tokens = consistent = implied = estimate = given_fits = None
    conc: tuple[str, ...] = ()
    needed: tuple[str, ...] = ()
    if log.available_gib is not None and log.available_gib > 0:
        lo, hi = logged_gib_bounds(log.available_gib)
        a, b = _carve(model, s, lo), _carve(model, s, hi - 1)
        given_tokens = (a.num_tokens, b.num_tokens)
        logged = _logged_tokens(log, a.block_size)
        if logged is not None:
            consistent = a.num_tokens <= logged <= b.num_tokens
            implied = logged / a.num_tokens * lo / GiB if a.num_tokens else None
        conc = tuple(dict.fromkeys(f"{c.max_concurrency:.2f}" for c in (a, b)))
        places = _decimals(log.needed_gib) if log.needed_gib else 2
        needed = tuple(dict.fromkeys(f"{c.required_bytes / GiB:.{places}f}" for c in (a, b)))
        estimate = (a.estimated_max_model_len, b.estimated_max_model_len)
        given_fits = b.fits
    count = None
    probe = _carve(model, s, GiB)
    blocks = _logged_blocks(log, probe)
    if blocks is not None:
        count = _carve(model, s, blocks * probe.bytes_per_block)
    p, plan_error = None, record.mismatch.get("no_e2e")
    if record.gpu is not None and plan_error is None:
        try:
            p, plan_error = plan(model, resolve_gpu(record.gpu), s), None
        except CapacityPlannerError as exc:
            plan_error = str(exc)
    e2e = e2e_tokens = weights = None
    if p is not None:
        if log.available_gib:
            e2e = p.memory.available_kv_bytes / GiB / log.available_gib - 1.0
        logged_tokens = _logged_tokens(log, p.kv.block_size)
        if logged_tokens:
            e2e_tokens = p.kv.num_tokens / logged_tokens - 1.0
    if log.weights_gib is not None:
        w = p if p is not None else plan(model, resolve_gpu("1024GiB"), s)
        weights = w.memory.weights_bytes / GiB / log.weights_gib - 1.0
    return RecordCheck(
        record, given_tokens, consistent, implied, conc, needed, estimate, given_fits,
        count, p, plan_error, e2e, e2e_tokens, weights,
    )  # fmt: skip


def accuracy_summary(checks: tuple[RecordCheck, ...]) -> dict[str, Any]:
    """Counts behind the README summary: exact carves and the end-to-end error distribution."""
    carved = [c for c in checks if c.given_consistent is not None]
    counted = [c for c in checks if c.count_consistent is not None]
    errors = sorted(abs(e) for c in checks if (e := c.headline_error) is not None)
    return {
        "records": len(checks),
        "sources": len({c.record.source.url for c in checks}),
        "carved": len(carved),
        "carved_exact": sum(bool(c.given_consistent) for c in carved),
        "counted": len(counted),
        "counted_exact": sum(bool(c.count_consistent) for c in counted),
        "e2e": len(errors),
        "within_1": sum(e <= 0.01 for e in errors),
        "within_5": sum(e <= 0.05 for e in errors),
        "within_10": sum(e <= 0.10 for e in errors),
        "median": statistics.median(errors) if errors else None,
        "releases": sorted(
            {m.group(0) for c in checks if (m := _RELEASE.match(c.record.release))},
            key=lambda v: tuple(int(x) for x in v.split(".")),
        ),
    }


def _logged_cell(log: Logged) -> str:
    parts = []
    if log.available_gib is not None:
        parts.append(f"{log.available_gib:.2f} GiB")
    if log.blocks is not None:
        parts.append(f"{log.blocks:,} blocks")
    if log.tokens is not None:
        parts.append(f"{log.tokens:,} tokens")
    if log.cpu_blocks is not None:
        parts.append(f"{log.cpu_blocks:,} CPU blocks")
    if log.concurrency is not None:
        parts.append(f"{log.concurrency}x")
    if log.needed_gib is not None:
        parts.append(f"needs {log.needed_gib} GiB")
    if log.estimated_max_len is not None:
        parts.append(f"est. {log.estimated_max_len:,}")
    if log.error_tokens is not None:
        parts.append(f"max {log.error_tokens:,} tokens")
    if log.weights_gib is not None:
        parts.append(f"weights {log.weights_gib} GiB")
    return ", ".join(parts)


def _carve_cell(c: RecordCheck) -> str:
    out = []
    if c.given_tokens is not None:
        t0, t1 = c.given_tokens
        cell = f"{t0:,}-{t1:,} tokens" if t0 != t1 else f"{t0:,} tokens"
        if c.given_consistent is not None:
            cell += " ✓" if c.given_consistent else " ✗"
        if c.record.logged.needed_gib:
            cell += f"; needs {'/'.join(c.needed_gib)} GiB"
        if c.record.logged.estimated_max_len and c.estimate_range:
            cell += f"; est. {c.estimate_range[0]:,}-{c.estimate_range[1]:,}"
        out.append(cell)
    if c.count is not None:
        k, log = c.count, c.record.logged
        figs = [f"{k.num_tokens:,} tokens"]
        if log.concurrency:
            figs.append(f"{k.max_concurrency:.2f}x")
        if log.cpu_blocks is not None:
            figs.append(f"{k.num_cpu_blocks:,} CPU blocks")
        out.append(
            f"{k.num_blocks:,} blocks → " + ", ".join(figs) + (" ✓" if c.count_consistent else " ✗")
        )
    return "<br>".join(out)


def _e2e_cell(c: RecordCheck) -> str:
    if c.plan is None:
        return "n/a"
    parts = []
    if c.e2e_error is not None:
        parts.append(f"{c.plan.memory.available_kv_bytes / GiB:.2f} GiB ({c.e2e_error:+.1%})")
    if c.e2e_tokens_error is not None:
        parts.append(f"{c.plan.kv.num_tokens:,} tokens ({c.e2e_tokens_error:+.1%})")
    return ", ".join(parts) or "n/a"


_WHY = {"given": "carve", "e2e": "end to end", "no_e2e": "not comparable"}


def markdown_table(checks: tuple[RecordCheck, ...] | None = None) -> str:
    """The per-record table of docs/ACCURACY.md."""
    checks = checks if checks is not None else tuple(check_record(r) for r in ISSUE_RECORDS)
    rows = [
        "| source | vLLM | model, GPU, settings | logged | carved by the planner "
        "(from logged memory; from logged count) | end to end | weights | why it misses |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in checks:
        r = c.record
        served = f" (served: {r.served_model})" if r.served_model else ""
        settings = ", ".join(f"{k}={v}" for k, v in r.settings.items()) or "defaults"
        w = "" if c.weights_error is None else f"{c.weights_error:+.1%}"
        why = "; ".join(f"{_WHY[k]}: {v}" for k, v in r.mismatch.items())
        rows.append(
            f"| [{r.issue}]({r.source.url}) | {r.release} ({r.engine}; `{r.formula}`) | "
            f"{r.model.removeprefix('config:')}{served}; {r.gpu or '?'}; {settings} | "
            f"{_logged_cell(r.logged)} | {_carve_cell(c)} | {_e2e_cell(c)} | {w} | {why} |"
        )
    return "\n".join(rows)


def summary_markdown(checks: tuple[RecordCheck, ...] | None = None) -> str:
    """The summary shown in the README and at the top of docs/ACCURACY.md."""
    checks = checks if checks is not None else tuple(check_record(r) for r in ISSUE_RECORDS)
    s = accuracy_summary(checks)
    median = "n/a" if s["median"] is None else f"{s['median']:.1%}"
    return "\n".join(
        [
            f"- {s['records']} start-ups from {s['sources']} public issues and pull requests, "
            f"vLLM {s['releases'][0]} to {s['releases'][-1]}.",
            f"- Carved from the logged available memory: exact to the block on "
            f"{s['carved_exact']} of {s['carved']} records.",
            f"- Carved from the logged block or token count (tokens, concurrency, V0 error and "
            f"`# CPU blocks`): exact on {s['counted_exact']} of {s['counted']}.",
            f"- End to end from model + GPU + settings, on the {s['e2e']} records that name "
            f"the GPU of a setup the planner models: "
            f"within 1% on {s['within_1']}, within 5% on {s['within_5']}, within 10% on "
            f"{s['within_10']}; median absolute error {median}.",
        ]
    )


def main() -> None:
    checks = tuple(check_record(r) for r in ISSUE_RECORDS)
    print(summary_markdown(checks))
    print()
    print(markdown_table(checks))


if __name__ == "__main__":
    main()
