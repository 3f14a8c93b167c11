"""SGLang's hybrid sliding-window pool, recomputed: the split, each pool's line, the total.

Hybrid sliding-window models (`SWAKVPool`, `mem_cache/swa_memory_pool.py` of
sgl-project/sglang) first print the split of `HybridSWAPoolConfigurator`
(`model_executor/pool_configurator.py`):

    Use sliding window memory pool. full_layer_tokens=F, swa_layer_tokens=S

with `S = page-align(int(F x swa_full_tokens_ratio))`, then one "KV Cache is allocated"
line per pool (the SWA pool's S tokens over the sliding layers first, then the full
pool's F tokens over the full layers) and `SWAKVPool mem usage: T GB, swa size: S, full
size: F` (T = both pools' K + V). Each pool's buffers hold `tokens + page_size` slots
(slot 0 is a dummy), so K takes `(tokens + page) x KV heads per rank x head_dim x that
pool's layers x dtype`.

Retold as profile (the memory both pools hold, and as one pool for every layer) ->
split (F and S against the ratio and the page) -> pools (each pool's #tokens recomputed
from its logged K size and the model's per-token bytes of that pool's layers).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from capacity_planner._units import GiB
from capacity_planner.errors import CapacityPlannerError
from capacity_planner.explain.logmodel import LogModel
from capacity_planner.explain.parse import LogRun
from capacity_planner.explain.patterns import Fact
from capacity_planner.explain.types import Check, Setting
from capacity_planner.sglang import DEFAULT_SWA_FULL_TOKENS_RATIO, pool_cell_sizes

__all__ = ["half_ulp", "hybrid_checks", "kv_dtype", "setting_value", "tp_size"]

# The story's order: profile -> split -> pools.
_ORDER = {"profile": 0, "split": 1, "pools": 2}


@dataclass(frozen=True)
class _Pool:
    """One "KV Cache is allocated" line."""

    tokens: Fact
    k: Fact | None  # K size, GiB
    v: Fact | None
    kv: Fact | None  # "KV size" (K and V together, MLA pools)

    @property
    def line(self) -> int:
        return self.tokens.line_no

    def gib(self) -> float:
        if self.kv is not None:
            return float(self.kv.value)
        return float(self.k.value if self.k else 0) + float(self.v.value if self.v else 0)

    def terms(self) -> int:
        return 1 if self.kv is not None else 2


def _pools(run: LogRun, source: str | None) -> list[_Pool]:
    """The pool lines of one process, in log order."""
    by_line: dict[int, dict[str, Fact]] = {}
    for fact in run.facts:
        if fact.source == source and fact.key in ("sglang_tokens", "sglang_k_gib",
                                                  "sglang_v_gib", "sglang_kv_gib"):  # fmt: skip
            by_line.setdefault(fact.line_no, {})[fact.key] = fact
    return [
        _Pool(
            f["sglang_tokens"], f.get("sglang_k_gib"), f.get("sglang_v_gib"), f.get("sglang_kv_gib")
        )
        for _, f in sorted(by_line.items())
        if "sglang_tokens" in f
    ]


def half_ulp(fact: Fact) -> float:
    """Half a unit of the last printed digit: the rounding the log applied."""
    return 0.5 * 10.0 ** -max(fact.decimals, 0) + 1e-9


def setting_value(settings: dict[str, Setting], name: str, default: float) -> tuple[float, str]:
    setting = settings.get(name)
    if setting is None or isinstance(setting.value, (bool, str)):
        return default, "assumed"
    return float(setting.value), setting.origin


def tp_size(settings: dict[str, Setting]) -> int:
    setting = settings.get("tensor_parallel_size")
    return int(setting.value) if setting is not None and not isinstance(setting.value, str) else 1


def kv_dtype(settings: dict[str, Setting]) -> str:
    setting = settings.get("kv_cache_dtype")
    return "fp8" if setting is not None and "fp8" in str(setting.value).lower() else "auto"


def _split_check(full: Fact, swa: Fact, ratio: float, ratio_origin: str, page: int) -> Check:
    f, s = int(full.value), int(swa.value)
    # Newer SGLang aligns F first and takes S from it; older releases took S from F
    # before aligning F: any F' in [F, F + page) reproduces either.
    lo = int(f * ratio) // page * page
    hi = int((f + page - 1) * ratio) // page * page
    formula = f"swa = page-align(int(full {f:,} x ratio {ratio:g})), page {page}"
    expected = f"{lo:,}" if lo == hi else f"{lo:,}-{hi:,}"
    if lo <= s <= hi and f % page == 0:
        return Check("split", "SGLang SWA split", formula, expected, f"{s:,}", "consistent",
                     None, swa.line_no)  # fmt: skip
    implied = s / f if f else float("nan")
    if f % page:
        cause = f"full_layer_tokens is not a multiple of page {page}: another --page-size"
    elif ratio_origin.startswith("assumed"):
        cause = (
            f"the log's split implies --swa-full-tokens-ratio {implied:.3f}, not SGLang's "
            f"default {ratio:g}: another --swa-full-tokens-ratio (pass it), or a release that "
            "ignored the flag for this model and split 1:1 (MiMo-V2-Flash before sglang PR #15488)"
        )
    else:
        cause = f"the log's split implies a ratio of {implied:.3f}, not {ratio:g} ({ratio_origin})"
    return Check("split", "SGLang SWA split", formula, expected, f"{s:,}", "inconsistent",
                 cause, swa.line_no)  # fmt: skip


def _assign(pools: list[_Pool], full: int, swa: int) -> tuple[_Pool | None, _Pool | None]:
    """(SWA pool line, full pool line): SGLang builds the SWA pool first."""
    if len(pools) >= 2 and int(pools[0].tokens.value) == swa and int(pools[1].tokens.value) == full:
        return pools[0], pools[1]
    if swa == full:  # one line alone cannot say which pool it is
        return (pools[0], pools[1]) if len(pools) >= 2 else (None, None)
    by_tokens = {int(p.tokens.value): p for p in reversed(pools)}
    return by_tokens.get(swa), by_tokens.get(full)


def _pool_check(
    name: str,
    pool: _Pool,
    per_token: float | None,
    page: int,
    what: str,
) -> Check:
    """#tokens of one pool recomputed from its logged K size (or implied bytes per token)."""
    tokens = int(pool.tokens.value)
    size = pool.k if pool.k is not None else pool.kv
    if size is None:
        return Check("pools", name, "#tokens from K size", None, f"{tokens:,}", "unchecked",
                     "the line gives no K size", pool.line)  # fmt: skip
    label = "K" if pool.k is not None else "K+V"
    skew = ""
    if pool.k is not None and pool.v is not None and pool.k.literal != pool.v.literal:
        skew = (
            f"V ({pool.v.literal} GB) differs from K ({pool.k.literal} GB): V heads are "
            "another size than K heads (MiMo-V2: 128 vs 192); the planner's models have equal "
            "K and V heads, so only K is checked"
        )
    gib = float(size.value)
    if per_token is None:
        implied = gib * GiB / (tokens + page)
        spread = half_ulp(size) * GiB / (tokens + page)
        return Check("pools", name, f"{label} {size.literal} GB / (#tokens {tokens:,} + page "
                     f"{page})", f"{implied:,.0f} +- {spread:,.0f} B of {label} per token",
                     f"{tokens:,}",
                     "derived", ("compare with KV heads/rank x head_dim x layers x dtype; "
                                 "pass --model to check") + (f"; {skew}" if skew else ""),
                     pool.line)  # fmt: skip
    half = half_ulp(size)
    lo = max(0, math.ceil((gib - half) * GiB / per_token) - page)
    hi = math.floor((gib + half) * GiB / per_token) - page
    formula = f"{label} {size.literal} GB / {per_token:,.0f} B per token ({what}) - page {page}"
    expected = f"{lo:,}-{hi:,}" if lo != hi else f"{lo:,}"
    if lo <= tokens <= hi:
        return Check("pools", name, formula, expected, f"{tokens:,}", "consistent",
                     skew or None, pool.line)  # fmt: skip
    # > 1: the model's tokens cost less than the log's (TP assumed too large, or an fp8
    # cache assumed for a bf16 one); < 1: the reverse.
    factor = (gib * GiB / per_token) / max(tokens + page, 1)
    times = factor if factor >= 1 else 1 / factor
    if round(times) >= 2 and abs(times - round(times)) < 0.02 * round(times):
        side = "smaller" if factor > 1 else "larger"
        cause = (
            f"off by {round(times)}x: the log's TP size is {round(times)}x {side} than assumed "
            "(pass --tensor-parallel-size)"
            + (", or another KV dtype (fp8 vs bf16)" if round(times) == 2 else "")
        )
    else:
        cause = "another model, TP size, KV dtype or page size than assumed"
    return Check("pools", name, formula, expected, f"{tokens:,}", "inconsistent",
                 "; ".join(x for x in (cause, skew) if x), pool.line)  # fmt: skip


def hybrid_checks(run: LogRun, settings: dict[str, Setting], model: LogModel | None) -> list[Check]:
    """Profile, split and per-pool checks of a hybrid pool's lines (empty without any)."""
    anchor = run.get("sglang_full_tokens") or run.get("sglang_pools_gib")
    anchor = anchor or run.get("sglang_all_swa_tokens")
    if anchor is None:
        return []
    ratio, ratio_origin = setting_value(
        settings, "swa_full_tokens_ratio", DEFAULT_SWA_FULL_TOKENS_RATIO
    )
    page = int(setting_value(settings, "page_size", 1)[0])
    checks: list[Check] = []
    full_fact = run.get("sglang_full_tokens") or run.get("sglang_pool_full_size")
    swa_fact = run.get("sglang_swa_tokens") or run.get("sglang_pool_swa_size")
    all_swa = run.get("sglang_all_swa_tokens")
    # The process with the most pool lines, the anchor's first: a quoted excerpt may lack
    # some of one rank's lines and keep another's.
    sources = [anchor.source, *(f.source for f in run.all("sglang_tokens"))]
    pools = max((_pools(run, src) for src in sources), key=len)
    if all_swa is not None:
        swa_pool, full_pool = (pools[0] if pools else None), None
        full_n, swa_n = 0, int(all_swa.value)
    elif full_fact is not None and swa_fact is not None:
        full_n, swa_n = int(full_fact.value), int(swa_fact.value)
        swa_pool, full_pool = _assign(pools, full_n, swa_n)
        if page >= 1 and ratio > 0:
            checks.append(_split_check(full_fact, swa_fact, ratio, ratio_origin, page))
    else:
        return []
    total = run.get("sglang_pools_gib")
    found = [p for p in (swa_pool, full_pool) if p is not None]
    if total is not None and len(found) == (1 if all_swa is not None else 2):
        summed = sum(p.gib() for p in found)
        tol = half_ulp(total) + sum(p.terms() for p in found) * 0.005 + 1e-9
        ok = abs(summed - float(total.value)) <= tol
        checks.append(Check(
            "profile", "SGLang pools' memory", "sum of the pool lines' K + V",
            f"{summed:.2f} GB", f"{total.literal} GB", "consistent" if ok else "inconsistent",
            None if ok else "the pool lines and the SWAKVPool line come from different ranks "
            "or start-ups", total.line_no))  # fmt: skip
    for fact, pool, n in ((swa_fact, swa_pool, swa_n), (full_fact, full_pool, full_n)):
        if fact is not None and pool is None and n > 0:
            checks.append(Check("pools", "SGLang pool line", f"a line with #tokens: {n:,}",
                                None, None, "unchecked", "no pool line of this process prints "
                                "that many tokens (cut short, or another rank's)",
                                fact.line_no))  # fmt: skip
    full_tok = swa_tok = None
    what_full = what_swa = ""
    if model is not None:
        tp, dtype = tp_size(settings), kv_dtype(settings)
        try:
            full_cell, swa_cell = pool_cell_sizes(model.spec, tp, dtype)
        except (CapacityPlannerError, ValueError) as exc:
            checks.append(Check("pools", "SGLang pools", "per-token bytes of each pool", None,
                                None, "unchecked", str(exc), anchor.line_no))  # fmt: skip
            return checks
        if swa_cell == 0:
            checks.append(Check("pools", "SGLang pools", "per-token bytes of each pool", None,
                                None, "unchecked", f"{model.name} has no sliding-window "
                                "layers, yet SGLang split its pool: another model?",
                                anchor.line_no))  # fmt: skip
            return checks
        full_tok, swa_tok = full_cell / 2, swa_cell / 2
        what_full = f"full layers of {model.name}, TP {tp}"
        what_swa = f"sliding layers of {model.name}, TP {tp}"
        if found:
            pool_bytes = sum(p.gib() for p in found) * GiB
            one_pool = pool_bytes / (full_cell + swa_cell)
            checks.append(Check(
                "profile", "SGLang pool as one", f"(K + V of both pools) / "
                f"{full_cell + swa_cell:,} B per token (every layer)", f"{one_pool:,.0f} tokens",
                None, "derived", "about what --disable-hybrid-swa-memory would give one pool",
                anchor.line_no))  # fmt: skip
    if swa_pool is not None:
        checks.append(_pool_check("SGLang SWA pool #tokens", swa_pool, swa_tok, page, what_swa))
    if full_pool is not None:
        checks.append(_pool_check("SGLang full pool #tokens", full_pool, full_tok, page, what_full))
    return sorted(checks, key=lambda c: _ORDER[c.stage])
