"""Human-readable reports: the profile -> subtract -> carve table, then vLLM's own lines."""

from __future__ import annotations

from capacity_planner._units import GiB, MiB
from capacity_planner.inverse import InverseResult
from capacity_planner.plan import CapacityPlan
from capacity_planner.prefix import PrefixCachingEstimate
from capacity_planner.verdict import Verdict

__all__ = ["format_inverse", "format_plan", "format_prefix"]


def _kinds(plan: CapacityPlan) -> str:
    m = plan.model
    names = {
        "full": "full attention",
        "sliding": f"sliding window {m.sliding_window}",
        "mla": "MLA latent",
        "mamba": f"{m.mamba.kind if m.mamba else 'mamba'} state",
    }
    parts = [f"{m.count(k)} {names[k]}" for k in ("full", "sliding", "mla", "mamba") if m.count(k)]
    return ", ".join(parts)


def _ranks(plan: CapacityPlan) -> list[str]:
    """One row per group of identical ranks; the deciding one marked."""
    kv = plan.kv
    out = ["every rank (vLLM uses the smallest block count of any rank)"]
    out.append(f"  {'rank':<26}{'weights':>10}{'activ.':>10}{'KV memory':>12}{'blocks':>10}")
    for r in plan.ranks:
        mark = "  <- decides" if r is plan.memory else ""
        kvm = f"{r.available_kv_bytes / GiB:.2f}" if not r.shortfall_bytes else "none"
        blocks = r.available_kv_bytes // kv.bytes_per_block if kv.bytes_per_block else 0
        if r.stage != kv.deciding_stage or r is plan.memory:
            blocks = min(blocks, kv.stage_num_blocks[r.stage])
        out.append(
            f"  {r.rank_label:<26}{r.weights_bytes / GiB:>10.2f}{r.activation_bytes / GiB:>10.2f}"
            f"{kvm:>12}{blocks:>10,}{mark}"
        )
    return out


def format_plan(plan: CapacityPlan, verdict: Verdict | None = None) -> str:
    m, kv, mem, s = plan.model, plan.kv, plan.memory, plan.settings
    out: list[str] = []
    out.append(
        f"{m.name} on {plan.gpu.name} ({plan.gpu.memory_gib:.2f} GiB), "
        f"modelling {kv.formula.name}: {kv.formula.releases}"
    )
    out.append(
        f"model: {m.num_hidden_layers} layers ({_kinds(plan)}); {m.num_kv_heads} KV heads x "
        f"{m.head_dim}; {m.param_count() / 1e9:.2f}B params; TP {s.tensor_parallel_size} x "
        f"PP {s.pipeline_parallel_size}; KV dtype {kv.kv_cache_dtype}"
    )
    out.append("")
    who = f", stage {mem.stage}" if mem.num_stages > 1 else ""
    out.append(f"profile -> subtract -> carve (per GPU, the deciding rank{who})")
    for step in mem.steps:
        out.append(f"  {step.label:<40} {step.bytes / GiB:>9.2f} GiB   {step.detail}")
    out.append("")
    out.append("KV cache layout (one worker)")
    out.append(f"  {'group':<6}{'kind':<16}{'layers':>7}{'pad':>5}{'block':>7}{'page':>14}")
    for i, g in enumerate(kv.groups):
        out.append(
            f"  {i:<6}{g.kind:<16}{g.num_layers:>7}{g.padding_layers:>5}{g.block_size:>7}"
            f"{g.page_size_bytes / 1024:>10.1f} KiB"
        )
    out.append(
        f"  one block id = {kv.bytes_per_block / MiB:.3f} MiB (page x {kv.group_size} layer"
        f"{'s' if kv.group_size != 1 else ''}); {kv.num_blocks:,} blocks; one "
        f"{kv.max_model_len:,}-token request needs {kv.blocks_per_request:,} blocks"
    )
    if len(plan.ranks) > 1:
        out.append("")
        out.extend(_ranks(plan))
    out.append("")
    out.append(f"vLLM ({kv.formula.name}) would print:")
    out.extend(f"  {line}" for line in plan.log_lines())
    if verdict is not None:
        out.append("")
        out.extend(verdict.lines())
    notes = (*mem.notes, *kv.notes, *m.notes)
    if notes:
        out.append("")
        out.append("notes:")
        out.extend(f"  - {n}" for n in dict.fromkeys(notes))
    return "\n".join(out)


def format_prefix(est: PrefixCachingEstimate, model_name: str | None = None) -> str:
    out = [
        f"prefix caching: {est.users:,} users x ({est.prefix_tokens:,} shared + "
        f"{est.suffix_tokens:,} private tokens), block_size {est.block_size}",
        f"  shared full blocks: {est.shared_blocks:,} "
        f"(floor({est.prefix_tokens}/{est.block_size}))",
        f"  without caching: {est.users:,} x {est.blocks_per_user_without} = "
        f"{est.blocks_without:,} blocks",
        f"  with caching:    {est.shared_blocks:,} + {est.users:,} x {est.blocks_per_user_with} = "
        f"{est.blocks_with:,} blocks",
        f"  multiplier: {est.multiplier:.2f}x more users in the same memory",
    ]
    if (
        est.bytes_per_block is not None
        and est.bytes_without is not None
        and est.bytes_with is not None
    ):
        who = f" for {model_name}" if model_name else ""
        out.append(
            f"  KV memory{who}: {est.bytes_without / GiB:,.2f} GiB without, "
            f"{est.bytes_with / GiB:,.2f} GiB with ({est.bytes_per_block / MiB:.3f} MiB per block)"
        )
    if est.pool_blocks is not None:
        out.append(
            f"  a pool of {est.pool_blocks:,} blocks holds {est.users_that_fit_without:,} users "
            f"without and {est.users_that_fit_with:,} with prefix caching"
        )
    out.append("  (prompt tokens only; decode growth and sliding-window/Mamba groups ignored)")
    return "\n".join(out)


def format_inverse(result: InverseResult) -> str:
    head = f"{result.question}: {result.answer if result.feasible else 'not reachable'}"
    out = [head, f"  {result.explanation}"]
    if result.plan is not None:
        out.append("")
        out.append(format_plan(result.plan))
    return "\n".join(out)
