"""The tables of docs/ACCURACY.md and the README summary, generated from the checks."""

from __future__ import annotations

from capacity_planner import GiB
from capacity_planner.accounting.startup import COLD_COMPILE_EXTRA_RANGE
from capacity_planner.records.checks import (
    ColdWarmPair,
    RecordCheck,
    accuracy_summary,
    check_record,
    cold_warm_pairs,
)
from capacity_planner.records.sources import ISSUE_RECORDS, Logged

__all__ = ["main", "markdown_table", "summary_markdown"]


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
    if log.consumed_gib is not None:
        parts.append(
            f"breakdown: consumed {log.consumed_gib}, peak {log.peak_activation_gib}, "
            f"graphs {log.cuda_graph_gib} GiB"
            + (
                f" (estimated {log.cuda_graph_estimate_gib})"
                if log.cuda_graph_estimate_gib is not None
                else ""
            )
        )
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
    if c.verdict_agrees is not None:
        said = "starts" if c.plan.starts else "refuses"
        parts.append(f"{said} {'✓' if c.verdict_agrees else '✗'}")
    if c.cold_band is not None and c.in_cold_band is not None:
        lo, hi = c.cold_band
        parts.append(f"cold band {lo:.2f}-{hi:.2f} GiB {'✓' if c.in_cold_band else '✗'}")
    return ", ".join(parts) or "n/a"


def _delta(p: ColdWarmPair) -> float:
    return p.delta_gib


_WHY = {
    "given": "carve",
    "e2e": "end to end",
    "no_e2e": "not comparable",
    "verdict": "will it start",
    "cold_band": "cold band",
}


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
        if r.compile_cache:
            settings += f"; {r.compile_cache} compile cache"
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
    not_cold = "n/a" if s["not_cold_median"] is None else f"{s['not_cold_median']:.1%}"
    lo, hi = COLD_COMPILE_EXTRA_RANGE
    pairs = ", ".join(f"{p.delta_gib:.2f}" for p in sorted(cold_warm_pairs(), key=_delta))
    return "\n".join(
        [
            f"- {s['records']} start-ups from {s['sources']} public issues, pull requests and "
            f"repository files, vLLM {s['releases'][0]} to {s['releases'][-1]}.",
            f"- Carved from the logged available memory: exact to the block on "
            f"{s['carved_exact']} of {s['carved']} records.",
            f"- Carved from the logged block or token count (tokens, concurrency, V0 error and "
            f"`# CPU blocks`): exact on {s['counted_exact']} of {s['counted']}.",
            f"- End to end from model + GPU + settings, on the {s['e2e']} records that name "
            f"the GPU of a setup the planner models: "
            f"within 1% on {s['within_1']}, within 5% on {s['within_5']}, within 10% on "
            f"{s['within_10']}; median absolute error {median}. Leaving out the "
            f"{s['e2e'] - s['not_cold_e2e']} known cold-cache starts (the planner's headline "
            f"is a warm start; they are held against its cold band below): within 5% on "
            f"{s['not_cold_within_5']} of {s['not_cold_e2e']}, median {not_cold}.",
            f"- Will it start: the planner's verdict matches the outcome the source reports on "
            f"{s['verdicts_agree']} of {s['verdicts']} of those records ({s['refusals']} of "
            f"them failed start-ups).",
            f"- Cold compile cache: the logged memory of {s['cold_in_band']} of {s['cold']} "
            f"cold starts lies within the planner's cold band (warm estimate less "
            f"{lo / GiB:.2f}-{hi / GiB:.2f} GiB); "
            f"the same configuration started cold and warm moved {pairs} GiB.",
        ]
    )


def main() -> None:
    checks = tuple(check_record(r) for r in ISSUE_RECORDS)
    print(summary_markdown(checks))
    print()
    print(markdown_table(checks))
