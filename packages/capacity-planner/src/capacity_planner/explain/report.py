"""Render a `LogExplanation` for people: one block per start-up, stage by stage."""

from __future__ import annotations

from capacity_planner.explain.types import Check, LogExplanation, RunReport

__all__ = ["render_text"]

_MARK = {
    "consistent": "ok",
    "inconsistent": "MISMATCH",
    "derived": "derived",
    "unchecked": "unchecked",
    "logged": "logged",
}
_STAGES = (
    ("profile", "1. profile   (budget = total x gpu_memory_utilization)"),
    ("subtract", "2. subtract  (weights, activation peak, non-torch memory)"),
    ("model", "   page size (one block of one layer on one rank)"),
    ("carve", "3. carve     (available // bytes per block)"),
    ("report", "4. report    (vLLM's lines, recomputed)"),
)
_SGLANG_STAGES = (
    ("profile", "1. profile   (SGLang: the memory both pools hold)"),
    ("split", "2. split     (full_layer_tokens; swa_layer_tokens = full x swa_full_tokens_ratio)"),
    ("pools", "3. pools     (each pool's #tokens from its K size and the model)"),
    ("carve", "   token pool (#tokens x cell size)"),
    ("report", "4. report    (the scheduler's max_total_num_tokens)"),
)


def _check_lines(check: Check) -> list[str]:
    where = f" [line {check.line}]" if check.line is not None else ""
    head = f"   - {check.name}: {check.formula}"
    out = [head]
    parts = []
    if check.expected is not None:
        parts.append(("= " if check.status == "derived" else "expected ") + check.expected)
    if check.logged is not None:
        parts.append(f"logged {check.logged}")
    out.append(f"       {' | '.join(parts) or '-'}  => {_MARK[check.status]}{where}")
    if check.note:
        out.append(f"       {check.note}")
    return out


def _run_lines(run: RunReport) -> list[str]:
    version = f" {run.vllm_version}" if run.vllm_version else ""
    out = [
        f"Start-up {run.index + 1} (lines {run.first_line}-{run.last_line}): "
        f"{run.engine} engine{version}  [{run.engine_origin}]"
    ]
    if run.settings:
        out.append(" settings:")
        for setting in run.settings:
            out.append(f"   {setting.name} = {setting.value}  ({setting.origin})")
    if run.processes:
        out.append(" processes: " + ", ".join(run.processes))
    for stage, title in _SGLANG_STAGES if run.engine == "SGLang" else _STAGES:
        checks = [c for c in run.checks if c.stage == stage]
        if checks:
            out.append(" " + title)
            for check in checks:
                out.extend(_check_lines(check))
    for note in run.notes:
        out.append(f" note: {note}")
    if run.missing:
        out.append(" not in this log: " + "; ".join(run.missing))
    verdict = "all recomputed numbers agree" if run.consistent else "some numbers disagree"
    out.append(f" verdict: {verdict}")
    return out


def render_text(explanation: LogExplanation) -> str:
    """The human report printed by `capacity-planner explain-log`."""
    out = [
        f"explain-log: {explanation.source} ({explanation.num_lines} lines, "
        f"{len(explanation.runs)} start-up{'s' if len(explanation.runs) != 1 else ''} found)"
    ]
    for note in explanation.notes:
        out.append(f"note: {note}")
    for run in explanation.runs:
        out.append("")
        out.extend(_run_lines(run))
    return "\n".join(out) + "\n"
