"""Profile and subtract: recompute a run's memory budget and its KV share.

vLLM's formula, per GPU (`Worker.determine_available_memory`, `vllm/v1/worker/gpu_worker.py`):

    budget    = total_gpu_memory x gpu_memory_utilization
    available = budget - weights - activation peak - non-torch memory [- CUDA graphs]

Three log formats print its pieces: V0 ~v0.6.4 prints ``peak_torch_memory`` (weights
plus activations) and ``kv_cache_size``; V0 v0.6.6+ and early V1 print every term
("the current vLLM instance can use ..."); newer V1 prints only "Available KV cache
memory", and the newest builds add the CUDA-graph estimate to the subtraction. Every
printed number is rounded (2 decimals), so a check passes when the difference fits
inside the sum of the roundings of its inputs.
"""

from __future__ import annotations

from capacity_planner.explain.parse import LogRun
from capacity_planner.explain.patterns import Fact
from capacity_planner.explain.types import Check, Setting

__all__ = ["half_unit", "memory_checks", "min_available"]


def half_unit(fact: Fact | None) -> float:
    """Half of the last printed digit: the most rounding can have moved the value."""
    if fact is None or fact.decimals == 0:
        return 0.5 if fact is not None and isinstance(fact.value, float) else 0.0
    return 0.5 * 10.0 ** (-fact.decimals)


def _num(fact: Fact | None) -> float | None:
    if fact is None or isinstance(fact.value, (str, bool)):
        return None
    return float(fact.value)


def _gib(value: float) -> str:
    # Three decimals: the logged inputs carry two, so the third shows the rounding room.
    return f"{value:.3f} GiB"


def min_available(run: LogRun) -> tuple[Fact | None, tuple[Fact, ...]]:
    """The smallest "available KV memory" over the processes that printed one.

    vLLM sizes every rank's pool with the minimum over ranks (`get_kv_cache_configs`),
    so that is the number the block count must fit.
    """
    facts = run.all("available_kv_gib")
    if not facts:
        return None, ()
    return min(facts, key=lambda f: float(f.value)), facts


def _budget(run: LogRun, settings: dict[str, Setting], checks: list[Check]) -> float | None:
    total = run.get("total_gpu_gib")
    util_fact = run.get("gpu_memory_utilization")
    util_setting = settings.get("gpu_memory_utilization")
    requested = run.get("requested_gib")
    util = _num(util_fact)
    if util is None and util_setting is not None and not isinstance(util_setting.value, str):
        util = float(util_setting.value)
    total_v, req_v = _num(total), _num(requested)
    if total_v is not None and util is not None:
        expected = total_v * util
        formula = f"total_gpu_memory {total_v:.2f} GiB x gpu_memory_utilization {util:.2f}"
        if req_v is None:
            checks.append(
                Check(
                    "profile",
                    "memory budget",
                    formula,
                    _gib(expected),
                    None,
                    "derived",
                    "vLLM takes this share of *total* memory, not free",
                )
            )
            return expected
        tol = half_unit(total) * util + half_unit(requested) + 1e-9
        ok = abs(expected - req_v) <= tol
        note = (
            None
            if ok
            else (
                "not total x utilisation: gpu_memory_utilization may have more than two "
                "decimals, or the line was edited"
            )
        )
        checks.append(
            Check(
                "profile",
                "memory budget",
                formula,
                _gib(expected),
                requested.literal + " GiB" if requested else None,
                "consistent" if ok else "inconsistent",
                note,
                None if requested is None else requested.line_no,
            )
        )
        return req_v
    if req_v is not None:
        checks.append(
            Check(
                "profile",
                "memory budget",
                "total x utilisation (not both printed)",
                None,
                requested.literal if requested else None,
                "unchecked",
                "total_gpu_memory or gpu_memory_utilization missing",
            )
        )
        return req_v
    return None


def _weights(run: LogRun, checks: list[Check]) -> Fact | None:
    loaded = run.get("weights_loaded_gib")
    profiled = run.get("weights_gib")
    if loaded is not None and profiled is not None:
        diff = abs(float(loaded.value) - float(profiled.value))
        ok = diff <= half_unit(loaded) + half_unit(profiled) + 1e-9
        checks.append(
            Check(
                "profile",
                "weights",
                "model loading line vs profiling line",
                loaded.literal + " GiB",
                profiled.literal + " GiB",
                "consistent" if ok else "inconsistent",
                None
                if ok
                else "weights measured twice disagree: the two lines "
                "come from different ranks or start-ups",
                profiled.line_no,
            )
        )
    return profiled or loaded


def memory_checks(run: LogRun, settings: dict[str, Setting]) -> tuple[list[Check], list[str]]:
    """Checks of the profile and subtract stages, and per-rank notes."""
    checks: list[Check] = []
    notes: list[str] = []
    budget = _budget(run, settings, checks)
    weights = _weights(run, checks)
    non_torch = run.get("non_torch_gib")
    activation = run.get("activation_gib")
    peak_torch = run.get("peak_torch_gib")
    graphs = run.get("cuda_graph_gib")
    _inputs(checks, weights, activation, peak_torch, non_torch, graphs, run)
    available, every = min_available(run)
    if len({f.value for f in every}) > 1 and available is not None:
        ranks = ", ".join(f"{f.source or 'main'}: {f.literal} GiB" for f in every)
        notes.append(
            f"available KV memory differs across processes ({ranks}); vLLM gives every "
            f"rank the minimum, {available.literal} GiB"
        )
    logged_avail = None if available is None else float(available.value)
    # The subtraction this log's version prints, most specific first.
    total = run.get("total_gpu_gib")
    util = _num(run.get("gpu_memory_utilization"))
    if peak_torch is not None and non_torch is not None and total is not None and util:
        exp = float(total.value) * util - float(peak_torch.value) - float(non_torch.value)
        tol = half_unit(total) * util + half_unit(peak_torch) + half_unit(non_torch)
        formula = (
            f"{float(total.value):.2f} x {util:.2f} - peak_torch {peak_torch.literal} "
            f"- non_torch {non_torch.literal}  (V0 ~v0.6.4)"
        )
        _subtract_check(checks, formula, exp, tol, available, logged_avail)
    elif budget is not None and weights is not None and non_torch and activation:
        base = budget - float(weights.value) - float(non_torch.value) - float(activation.value)
        tol = half_unit(weights) + half_unit(non_torch) + half_unit(activation) + 0.005
        formula = (
            f"budget {budget:.2f} - weights {weights.literal} - non_torch "
            f"{non_torch.literal} - activation peak {activation.literal}"
        )
        if graphs is not None and logged_avail is not None:
            with_graphs = base - float(graphs.value)
            if abs(with_graphs - logged_avail) <= tol + half_unit(graphs) + half_unit(available):
                formula += f" - CUDA graphs {graphs.literal}  (newer V1: graphs in the budget)"
                base, tol = with_graphs, tol + half_unit(graphs)
        _subtract_check(checks, formula, base, tol, available, logged_avail)
    elif available is not None:
        have = [
            n
            for n, f in (
                ("weights", weights),
                ("activation peak", activation),
                ("non-torch memory", non_torch),
            )
            if f is not None
        ]
        lacking = [
            n
            for n in ("memory budget", "weights", "activation peak", "non-torch memory")
            if n not in have and not (n == "memory budget" and budget is not None)
        ]
        checks.append(
            Check(
                "subtract",
                "available KV memory",
                "budget - weights - activation peak - non-torch",
                None,
                available.literal + " GiB",
                "unchecked",
                "this log does not print "
                + ", ".join(lacking)
                + " (newer V1 logs only the result)",
                available.line_no,
            )
        )
    if logged_avail is not None and logged_avail <= 0:
        notes.append(
            f"available KV memory is {available.literal if available else ''} GiB: the weights "
            "and the profile run already exceed the budget, so vLLM stops with 'No available "
            "memory for the cache blocks'; raise gpu_memory_utilization, shard the model "
            "(tensor parallelism) or quantise it"
        )
    return checks, notes


def _logged(name: str, what: str, fact: Fact, note: str | None = None) -> Check:
    return Check("profile", name, what, None, fact.literal + " GiB", "logged", note, fact.line_no)


def _inputs(
    checks: list[Check],
    weights: Fact | None,
    activation: Fact | None,
    peak_torch: Fact | None,
    non_torch: Fact | None,
    graphs: Fact | None,
    run: LogRun,
) -> None:
    """The profile's terms as vLLM printed them: the inputs of the subtraction."""
    if weights is not None and not (run.get("weights_gib") and run.get("weights_loaded_gib")):
        loaded = run.get("weights_gib") is None
        what = 'model loading line (vLLM\'s "GB" is GiB)' if loaded else "profiling line"
        checks.append(_logged("weights", what, weights))
    if peak_torch is not None:
        note = None
        if weights is not None:
            act = float(peak_torch.value) - float(weights.value)
            note = f"weights + activations; the activation peak is {act:.2f} GiB"
        checks.append(_logged("torch peak", "torch allocation peak of the profile run",
                              peak_torch, note))  # fmt: skip
    for fact, name, what in (
        (activation, "activation peak", "dummy forward pass at max_num_batched_tokens"),
        (non_torch, "non-torch memory", "NCCL, cuBLAS workspace, CUDA context growth"),
        (graphs, "CUDA graphs", "estimated graph memory (newer V1)"),
    ):
        if fact is not None:
            checks.append(_logged(name, what, fact))
    captured = run.get("cuda_graph_captured_gib")
    if captured is not None:
        checks.append(_logged("CUDA graphs captured", "after the KV cache is allocated: must "
                              "fit in the (1 - utilisation) headroom", captured))  # fmt: skip


def _subtract_check(
    checks: list[Check],
    formula: str,
    expected: float,
    tol: float,
    available: Fact | None,
    logged: float | None,
) -> None:
    if available is None or logged is None:
        checks.append(
            Check(
                "subtract",
                "available KV memory",
                formula,
                _gib(expected),
                None,
                "derived",
                "vLLM did not print the result",
            )
        )
        return
    ok = abs(expected - logged) <= tol + half_unit(available) + 1e-9
    note = (
        None
        if ok
        else (
            "the terms do not add up: another vLLM version's formula (CUDA graphs or the "
            "activation peak counted differently), or lines from different ranks"
        )
    )
    checks.append(
        Check(
            "subtract",
            "available KV memory",
            formula,
            _gib(expected),
            available.literal + " GiB",
            "consistent" if ok else "inconsistent",
            note,
            available.line_no,
        )
    )
