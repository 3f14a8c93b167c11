"""Carve: available memory -> blocks, and the numbers vLLM reports from the blocks.

    num_blocks  = available // (page_size x num_layers)       (get_num_blocks)
    tokens      = num_blocks x block_size                      (PR #13596, dense models)
    concurrency = tokens / max_model_len                       (V0; V1 up to ~v0.8)
                = num_blocks / cdiv(max_model_len, block_size) (newer V1,
                  get_max_concurrency_for_kv_cache_config)

The two concurrency formulas agree when max_model_len is a multiple of block_size, so
a log only tells them apart otherwise. A log prints "x.xx" with `%.2f`, which rounds;
a quoted value that matches only when truncated was copied by hand.
"""

from __future__ import annotations

import math

from capacity_planner.accounting.kv_config import KVCacheConfig
from capacity_planner.accounting.versions import get_formula
from capacity_planner.explain.concurrency import concurrency_checks, tokens_check
from capacity_planner.explain.failures import error_checks
from capacity_planner.explain.logmodel import Carving, LogModel, page_formula
from capacity_planner.explain.memory import half_unit, min_available
from capacity_planner.explain.parse import LogRun
from capacity_planner.explain.patterns import Fact
from capacity_planner.explain.types import Check, Setting

__all__ = ["carve_checks"]

GiB = 1 << 30


def _int_setting(settings: dict[str, Setting], name: str) -> int | None:
    setting = settings.get(name)
    if setting is None or isinstance(setting.value, (bool, str)):
        return None
    value = int(setting.value)
    return value if value > 0 else None


def _implied_block_bytes(available: Fact, blocks: int) -> tuple[float, float]:
    # blocks = floor(avail / bb)  =>  avail / (blocks + 1) < bb <= avail / blocks
    half = half_unit(available)
    avail = float(available.value)
    return (avail - half) * GiB / (blocks + 1), (avail + half) * GiB / max(blocks, 1)


def _int_fact(fact: Fact | None) -> int | None:
    return None if fact is None or isinstance(fact.value, (str, bool)) else int(fact.value)


def _kib(value: float) -> str:
    return f"{value / 1024:,.1f} KiB"


def _carving(settings: dict[str, Setting], version: str) -> Carving:
    kv_dtype = settings.get("kv_cache_dtype")
    dtype = settings.get("dtype")
    block = settings.get("block_size")
    if block is None or block.origin.startswith("assumed"):
        # An unstated block size is the version's default: 64 from 0.34, 16 before.
        block_size = get_formula(version).default_block_size
    else:
        block_size = _int_setting(settings, "block_size") or 16
    return Carving(
        block_size=block_size,
        tensor_parallel_size=_int_setting(settings, "tensor_parallel_size") or 1,
        pipeline_parallel_size=_int_setting(settings, "pipeline_parallel_size") or 1,
        kv_cache_dtype="auto" if kv_dtype is None else str(kv_dtype.value),
        dtype="auto" if dtype is None else str(dtype.value),
        max_model_len=_int_setting(settings, "max_model_len"),
        max_num_batched_tokens=_int_setting(settings, "max_num_batched_tokens"),
        vllm_version=version,
    )


def _bounds(fact: Fact) -> tuple[int, int]:
    """Bytes [lo, hi] a printed GiB value stands for."""
    half = half_unit(fact)
    value = float(fact.value)
    return max(0, math.ceil((value - half) * GiB)), max(0, math.floor((value + half) * GiB))


def carve_checks(
    run: LogRun,
    settings: dict[str, Setting],
    model: LogModel | None,
    engine: str,
    version: str,
) -> tuple[list[Check], list[str]]:
    """Checks of the carve and report stages (blocks, tokens, concurrency, errors)."""
    checks: list[Check] = []
    notes: list[str] = []
    how = _carving(settings, version)
    block_size = how.block_size
    blocks_fact = run.get("num_gpu_blocks")
    tokens_fact = run.get("kv_cache_tokens")
    available, every = min_available(run)
    sized = run.get("warmup_blocks_gib")
    if version == "v1-extensible" and sized is not None:
        # 0.34: "Available KV cache memory" is only an upper bound; the cache is what the
        # post-warm-up measurement committed.
        available, every = sized, (sized,)
    layout: KVCacheConfig | None = None
    if model is not None:
        nominal = _bounds(available)[0] if available is not None else GiB
        carved = model.try_carve(nominal, how)
        if isinstance(carved, str):
            notes.append(f"the planner cannot carve {model.name} with these settings: {carved}")
        else:
            layout = carved
            checks.append(Check("model", "page size", page_formula(layout),
                                f"{layout.bytes_per_block:,} B per block id "
                                f"({_kib(layout.bytes_per_block / layout.block_size)} per "
                                f"token and group)", None, "derived", model.caveat))  # fmt: skip
    if model is not None and layout is not None and layout.block_size != block_size:
        notes.append(
            f"{model.name}: vLLM sets the attention block size to {layout.block_size} tokens "
            "so an attention page holds a Mamba state (page unification); tokens use it"
        )
        block_size = layout.block_size
    groups = 1 if layout is None else max(1, len(layout.groups))
    slack = 0
    blocks: int | None = None if blocks_fact is None else int(blocks_fact.value)
    per_request = None
    if model is not None and how.max_model_len is not None:
        carved = model.try_carve(GiB, how)
        per_request = None if isinstance(carved, str) else carved.blocks_per_request
    length = how.max_model_len or _int_fact(run.get("concurrency_len"))
    from_concurrency = get_formula(version).token_formula.startswith("int(")
    if blocks is None and tokens_fact is not None and from_concurrency and length:
        # 0.21+: tokens = int(blocks / blocks_per_request x max_model_len), so the blocks
        # lie in [ceil(t x bpr / L), ceil((t + 1) x bpr / L) - 1].
        tokens = int(tokens_fact.value)
        bpr = per_request or -(-length // block_size)
        lo = -(-tokens * bpr // length)
        hi = max(lo, -(-(tokens + 1) * bpr // length) - 1)
        blocks, slack = lo, hi - lo
        checks.append(Check("carve", "GPU blocks from tokens", f"tokens {tokens:,} x {bpr:,} "
                            f"blocks per request / {length:,} (tokens = int(concurrency x "
                            "max_model_len))", f"{lo:,}" if hi == lo else f"{lo:,}..{hi:,}",
                            None, "derived", "this version prints tokens, not blocks"))  # fmt: skip
    elif blocks is None and tokens_fact is not None:
        tokens = int(tokens_fact.value)
        if tokens % block_size == 0:
            blocks = tokens // block_size * groups
            # vLLM printed blocks // groups: up to groups - 1 blocks are invisible.
            slack = groups - 1
            how_many = "" if groups == 1 else f" x {groups} groups (+0..{slack}: vLLM floors)"
            checks.append(Check("carve", "GPU blocks from tokens", f"tokens {tokens:,} / "
                                f"block_size {block_size}{how_many}", f"{blocks:,}", None,
                                "derived", "this version prints tokens, not blocks"))  # fmt: skip
        else:
            notes.append(
                f"GPU KV cache size {tokens:,} tokens is not a multiple of block_size "
                f"{block_size}: the block size differs (hybrid models enlarge it), the model "
                "has several KV cache groups (tokens = blocks // groups x block_size), or this "
                "build prints int(concurrency x max_model_len) (2026 builds, vLLM issue #51041)"
            )
    block_bytes = None if layout is None else layout.bytes_per_block
    override = run.get("num_gpu_blocks_override")
    if model is not None and layout is not None and available is not None:
        _blocks_vs_model(checks, model, how, available, every, blocks, slack, blocks_fact, override)
    elif available is not None and blocks:
        _implied(checks, available, blocks, block_size)
    elif layout is not None and blocks:
        checks.append(Check("carve", "KV memory of the blocks",
                            f"{blocks:,} blocks x {layout.bytes_per_block:,} B",
                            f"{blocks * layout.bytes_per_block / GiB:.2f} GiB", None, "derived",
                            "the pool; available KV memory (not printed here) was at least "
                            "this and less than one block more"))  # fmt: skip
    _cpu_blocks(checks, run, settings, available, blocks, block_bytes)
    tokens_line = tokens_check(tokens_fact, blocks_fact, block_size, groups)
    checks += [tokens_line] if tokens_line is not None else []
    checks += concurrency_checks(run, blocks, block_size, how.max_model_len, engine, model,
                                 per_request, slack)  # fmt: skip
    checks += error_checks(run, blocks, block_size, model, how, available)
    return checks, notes


def _blocks_vs_model(
    checks: list[Check],
    model: LogModel,
    how: Carving,
    available: Fact,
    every: tuple[Fact, ...],
    blocks: int | None,
    slack: int,
    blocks_fact: Fact | None,
    override: Fact | None,
) -> None:
    lo_bytes, hi_bytes = _bounds(available)
    low, high = model.try_carve(lo_bytes, how), model.try_carve(hi_bytes, how)
    if isinstance(low, str) or isinstance(high, str):
        return
    lo, hi = low.num_blocks, high.num_blocks
    expected = f"{lo:,}" if lo == hi else f"{lo:,}..{hi:,}"
    formula = (f"{available.literal} GiB // {low.bytes_per_block:,} B per block id "
               f"({model.name}, {how.vllm_version} formula)")  # fmt: skip
    if blocks is None:
        checks.append(Check("carve", "GPU blocks", formula, expected, None, "derived"))
        return
    ok = lo <= blocks + slack and blocks <= hi
    cause = None if ok else _blocks_cause(blocks, (lo + hi) / 2, low.bytes_per_block,
                                          how.tensor_parallel_size, every, override)  # fmt: skip
    line = None if blocks_fact is None else blocks_fact.line_no
    checks.append(Check("carve", "GPU blocks", formula, expected, f"{blocks:,}",
                        "consistent" if ok else "inconsistent", cause, line))  # fmt: skip


def _implied(checks: list[Check], available: Fact, blocks: int, block_size: int) -> None:
    if float(available.value) <= 0:
        return
    lo_b, hi_b = _implied_block_bytes(available, blocks)
    checks.append(Check("carve", "bytes per block (implied)",
                        f"{available.literal} GiB / {blocks:,} blocks",
                        f"{_kib(lo_b)}..{_kib(hi_b)} per block = "
                        f"{_kib(lo_b / block_size)}..{_kib(hi_b / block_size)} per token",
                        None, "derived",
                        "all layers, one rank; --model checks it against a config"))  # fmt: skip


def _blocks_cause(
    blocks: int,
    expected: float,
    block_bytes: int,
    tp: int,
    every: tuple[Fact, ...],
    override: Fact | None,
) -> str:
    if override is not None:
        return f"num_gpu_blocks_override={override.value} replaced the profiled count"
    ratio = blocks / expected if expected else 0.0
    fits = blocks * block_bytes / GiB
    if ratio < 1 and (tp > 1 or len(every) > 1):
        return (
            f"one rank's line quoted under tensor parallelism: {blocks:,} blocks fit "
            f"{fits:.2f} GiB, so another rank had less free memory and vLLM keeps the "
            "minimum over ranks"
        )
    for factor, what in (
        (2.0, "an fp8 KV cache (--kv-cache-dtype fp8) or half the layers"),
        (0.5, "a 4-byte KV dtype or twice the layers/heads"),
        (float(tp), "no tensor-parallel sharding of KV heads"),
        (1 / tp if tp > 1 else 0.0, "tensor_parallel_size differs"),
    ):
        if factor and abs(ratio - factor) < 0.03 * factor:
            return f"{ratio:.2f}x the expected count: {what}"
    return (
        f"{blocks:,} blocks = {fits:.2f} GiB at this page size: another model, block size, "
        "tensor-parallel size or KV dtype than assumed, or a hybrid layout"
    )


def _cpu_blocks(
    checks: list[Check],
    run: LogRun,
    settings: dict[str, Setting],
    available: Fact | None,
    blocks: int | None,
    block_bytes: int | None,
) -> None:
    cpu = run.get("num_cpu_blocks")
    swap_setting = settings.get("swap_space")
    if cpu is None or swap_setting is None or isinstance(swap_setting.value, (str, bool)):
        return
    swap = float(swap_setting.value)
    cpu_blocks = int(cpu.value)
    swap_note = (
        ""
        if swap_setting.origin.startswith("line") or swap_setting.origin.startswith("--")
        else " (assuming the default --swap-space 4)"
    )
    if block_bytes is not None:
        expected = math.floor(swap * GiB / block_bytes)
        ok = expected == cpu_blocks
        checks.append(
            Check(
                "carve",
                "CPU blocks",
                f"swap_space {swap:g} GiB / {block_bytes:,} B" + swap_note,
                f"{expected:,}",
                f"{cpu_blocks:,}",
                "consistent" if ok else "inconsistent",
                None
                if ok
                else "swap_space differs from the assumed value, or the page size differs",
                cpu.line_no,
            )
        )
        return
    if cpu_blocks <= 0 or available is None or blocks is None or blocks <= 0:
        return
    cpu_lo, cpu_hi = swap * GiB / (cpu_blocks + 1), swap * GiB / cpu_blocks
    gpu_lo, gpu_hi = _implied_block_bytes(available, blocks)
    ok = cpu_lo < gpu_hi and gpu_lo <= cpu_hi
    checks.append(
        Check(
            "carve",
            "CPU vs GPU block size",
            f"swap {swap:g} GiB / {cpu_blocks:,} CPU blocks vs {available.literal} "
            f"GiB / {blocks:,} GPU blocks" + swap_note,
            f"{_kib(cpu_lo)}..{_kib(cpu_hi)}",
            f"{_kib(gpu_lo)}..{_kib(gpu_hi)}",
            "consistent" if ok else "inconsistent",
            "both pools use one block size"
            if ok
            else "the GPU pool's block does not match the CPU pool's: the blocks come "
            "from another rank's (smaller) memory, or swap_space is not the assumed "
            "value",
            cpu.line_no,
        )
    )
