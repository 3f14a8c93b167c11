"""Report: vLLM's "GPU KV cache size" and "Maximum concurrency" lines, recomputed.

    tokens      = num_blocks x block_size                      (PR #13596, dense models)
    concurrency = tokens / max_model_len                       (V0; V1 up to ~v0.8)
                = num_blocks / cdiv(max_model_len, block_size) (newer V1,
                  `get_max_concurrency_for_kv_cache_config` in v1/core/kv_cache_utils.py)

The two concurrency formulas agree when max_model_len is a multiple of block_size, so
a log tells them apart only otherwise. vLLM prints ``%.2f``, which rounds; a quoted
value that matches only when truncated was copied or computed by hand (the Phase 02 lab-03's
"68.65x" for 8788 blocks at 2048 tokens is such a value: vLLM prints 68.66x).
"""

from __future__ import annotations

import math

from block_allocator.kv_cache_spec import cdiv
from capacity_planner.explain.logmodel import LogModel
from capacity_planner.explain.parse import LogRun
from capacity_planner.explain.patterns import Fact
from capacity_planner.explain.types import Check

__all__ = ["concurrency_checks", "concurrency_formulas", "solve_max_model_len", "tokens_check"]

OLD = "tokens / max_model_len (V0, V1 up to ~v0.8)"
NEW = "blocks / cdiv(max_model_len, block_size) (newer V1)"
GROUPS = "blocks / the model's per-request blocks over its KV cache groups (newer V1)"
_BLOCK_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


def concurrency_formulas(blocks: int, block_size: int, max_model_len: int) -> dict[str, float]:
    """Both formulas vLLM has used for "Maximum concurrency"."""
    return {
        OLD: blocks * block_size / max_model_len,
        NEW: blocks / cdiv(max_model_len, block_size),
    }


def _prints(value: float, literal: str) -> bool:
    return f"{value:.2f}" == literal


def solve_max_model_len(blocks: int, block_size: int, printed: str) -> list[tuple[int, int, str]]:
    """(first, last, formula) ranges of max_model_len that print `printed` (as "%.2f")."""
    value = float(printed)
    half = 0.5 * 10.0 ** -len(printed.partition(".")[2])
    lo_x, hi_x = value - half, value + half
    if lo_x <= 0 or blocks <= 0:
        return []
    found = []
    tokens = blocks * block_size
    # tokens / L in [lo_x, hi_x)  <=>  L in (tokens / hi_x, tokens / lo_x]
    first, last = math.floor(tokens / hi_x) + 1, math.floor(tokens / lo_x)
    found += [(first, last, OLD)] if first <= last else []
    n_first, n_last = math.floor(blocks / hi_x) + 1, math.floor(blocks / lo_x)
    if n_first <= n_last:
        found.append(((n_first - 1) * block_size + 1, n_last * block_size, NEW))
    # Both ends must really print it (the float edges of the interval are open or closed).
    return [
        (a, b, f)
        for a, b, f in found
        if _prints(concurrency_formulas(blocks, block_size, a)[f], printed)
        and _prints(concurrency_formulas(blocks, block_size, b)[f], printed)
    ]


def _ranges(solutions: list[tuple[int, int, str]]) -> str:
    return "; ".join(
        (f"{a:,}" if a == b else f"{a:,}..{b:,}") + f" ({f.split(' (')[0]})"
        for a, b, f in solutions
    )


def tokens_check(
    tokens: Fact | None, blocks: Fact | None, block_size: int, groups: int = 1
) -> Check | None:
    """GPU KV cache size against the block count, when a log prints both."""
    if tokens is None or blocks is None:
        return None
    expected = int(blocks.value) // groups * block_size
    ok = expected == int(tokens.value)
    per_group = "" if groups == 1 else f" // {groups} groups"
    note = None if ok else (
        "the block size is not the assumed one, or the model has several KV cache groups "
        "(tokens = blocks // groups x block_size)"
    )  # fmt: skip
    return Check("report", "GPU KV cache size", f"{int(blocks.value):,} blocks{per_group} x "
                 f"block_size {block_size}", f"{expected:,} tokens",
                 f"{int(tokens.value):,} tokens", "consistent" if ok else "inconsistent", note,
                 tokens.line_no)  # fmt: skip


def _unknown_length(fact: Fact, blocks: int, block_size: int) -> Check:
    solutions = solve_max_model_len(blocks, block_size, fact.literal)
    name, formula = "maximum concurrency", f"{blocks:,} blocks, max_model_len not in the log"
    if solutions:
        note = f"max_model_len values that print {fact.literal}x: {_ranges(solutions)}"
        return Check("report", name, formula, None, fact.literal + "x", "unchecked", note,
                     fact.line_no)  # fmt: skip
    tokens = blocks * block_size
    near = max(1, round(tokens / float(fact.literal)))
    exact = concurrency_formulas(blocks, block_size, near)[OLD]
    note = (
        f"no max_model_len prints {fact.literal}x with {blocks:,} blocks of {block_size} "
        f"under either formula; the nearest, {near:,}, gives {exact:.5f} = {exact:.2f}x"
    )
    if f"{math.floor(exact * 100) / 100:.2f}" == fact.literal:
        note += f" ({fact.literal} is that value truncated, not rounded as vLLM's %.2f does)"
    others = [
        f"block_size {size}: {_ranges(found)}"
        for size in _BLOCK_SIZES
        if size != block_size and (found := solve_max_model_len(blocks, size, fact.literal))
    ]
    if others:
        note += "; only other block sizes fit: " + "; ".join(others[:3])
    return Check("report", name, formula, f"{exact:.2f}x at {near:,}", fact.literal + "x",
                 "inconsistent", note, fact.line_no)  # fmt: skip


def _mismatch_cause(blocks: int, block_size: int, length: int, fact: Fact) -> str:
    values = list(concurrency_formulas(blocks, block_size, length).values())
    if any(f"{math.floor(v * 100) / 100:.2f}" == fact.literal for v in values):
        return (
            f"{fact.literal}x is {values[0]:.5f} truncated, not rounded: vLLM prints %.2f, "
            f"which gives {values[0]:.2f}x, so this number was copied or computed by hand"
        )
    for size in _BLOCK_SIZES:
        formulas = concurrency_formulas(blocks, size, length)
        if size != block_size and any(_prints(v, fact.literal) for v in formulas.values()):
            return f"block_size {size} fits (the log does not state the block size)"
    solutions = solve_max_model_len(blocks, block_size, fact.literal)
    where = f"; max_model_len {_ranges(solutions)} would print it" if solutions else ""
    return (
        "neither formula gives it: a hybrid or sliding-window model (per-request cost is not "
        "max_model_len tokens), or the blocks and concurrency lines come from different "
        "start-ups" + where
    )


def concurrency_checks(
    run: LogRun,
    blocks: int | None,
    block_size: int,
    max_len: int | None,
    engine: str,
    model: LogModel | None,
    per_request_blocks: int | None = None,
    blocks_slack: int = 0,
) -> list[Check]:
    """The concurrency line against blocks, block size and max_model_len.

    `per_request_blocks` is the planner's count for the model's KV cache groups (newer
    V1 divides by it); for a dense model it equals cdiv(max_model_len, block_size).
    `blocks_slack`: blocks derived from a token count are known only to within the
    number of KV cache groups minus one.
    """
    fact, line_len = run.get("max_concurrency"), run.get("concurrency_len")
    if fact is None:
        return []
    checks = []
    if line_len is not None and max_len is not None and int(line_len.value) != max_len:
        checks.append(Check("report", "concurrency length", "max_model_len setting",
                            f"{max_len:,}", f"{int(line_len.value):,}", "inconsistent",
                            "the concurrency line names another max_model_len than the "
                            "settings", line_len.line_no))  # fmt: skip
    length = int(line_len.value) if line_len is not None else max_len
    if length is not None and length <= 0:
        length = None  # "0 tokens per request" is line noise, not a length
    if blocks is None:
        checks.append(Check("report", "maximum concurrency", "needs the block count", None,
                            fact.literal + "x", "unchecked", None, fact.line_no))  # fmt: skip
        return checks
    if length is None:
        return [*checks, _unknown_length(fact, blocks, block_size)]
    formulas = concurrency_formulas(blocks, block_size, length)
    if per_request_blocks and per_request_blocks != cdiv(length, block_size):
        formulas[GROUPS] = blocks / per_request_blocks
    old, new = formulas[OLD], formulas.get(GROUPS, formulas[NEW])
    expected = f"{old:.2f}x" if f"{old:.2f}" == f"{new:.2f}" else f"{old:.2f}x or {new:.2f}x"
    formula = f"{blocks:,} blocks x {block_size} / {length:,}"
    if GROUPS in formulas:
        formula += f"  or  {blocks:,} / {per_request_blocks:,} blocks per request"
    elif length % block_size:
        formula += f"  or  {blocks:,} / cdiv({length:,}, {block_size})"
    matching = [name for name, value in formulas.items() if _prints(value, fact.literal)]
    for extra in range(1, blocks_slack + 1):  # blocks known only up to the groups' floor
        if matching:
            break
        more = concurrency_formulas(blocks + extra, block_size, length)
        if per_request_blocks and GROUPS in formulas:
            more[GROUPS] = (blocks + extra) / per_request_blocks
        matching = [name for name, value in more.items() if _prints(value, fact.literal)]
    status, note = "consistent", "matches " + " and ".join(matching)
    if not matching:
        status, note = "inconsistent", _mismatch_cause(blocks, block_size, length, fact)
    elif engine == "V0" and OLD not in matching:
        status = "inconsistent"
        note = "matches only the newer V1 formula: another vLLM version's formula than V0's"
    elif model is not None and model.caveat:
        note += "; " + model.caveat
    checks.append(Check("report", "maximum concurrency", formula, expected, fact.literal + "x",
                        "consistent" if status == "consistent" else "inconsistent", note,
                        fact.line_no))  # fmt: skip
    return checks
