"""SGLang's token-pool line, recomputed: `#tokens` x cell size against the K/V sizes.

SGLang logs `KV Cache is allocated. dtype: D, #tokens: N, K size: X GB, V size: Y GB`
(`mem_cache/memory_pool.py`; "GB" there are GiB). With a known model, one token costs
`cell_size / 2` bytes of K (and as much of V) on a rank: KV heads per rank x head_dim x
layers x dtype (`capacity_planner.sglang`).
"""

from __future__ import annotations

from capacity_planner._units import GiB
from capacity_planner.errors import CapacityPlannerError
from capacity_planner.explain.logmodel import LogModel
from capacity_planner.explain.parse import LogRun
from capacity_planner.explain.types import Check, Setting
from capacity_planner.sglang import cell_size

__all__ = ["sglang_checks"]


def sglang_checks(run: LogRun, settings: dict[str, Setting], model: LogModel | None) -> list[Check]:
    """Checks for SGLang's pool line (empty when the run printed none)."""
    tokens = run.get("sglang_tokens")
    k_size = run.get("sglang_k_gib") or run.get("sglang_kv_gib")
    if tokens is None or k_size is None:
        return []
    both = run.get("sglang_k_gib") is None  # "KV size" counts K and V together
    if model is None:
        return [
            Check("carve", "SGLang token pool", "#tokens x cell size", None,
                  f"{int(tokens.value):,} tokens", "unchecked",
                  "name the model (--model) to check the K/V sizes", tokens.line_no)
        ]  # fmt: skip
    tp_setting = settings.get("tensor_parallel_size")
    tp = int(tp_setting.value) if tp_setting is not None else 1
    dtype = "fp8" if "fp8" in str(settings.get("kv_cache_dtype", "")).lower() else "auto"
    try:
        cell = cell_size(model.spec, tp, dtype)
    except (CapacityPlannerError, ValueError) as exc:
        return [Check("carve", "SGLang token pool", "#tokens x cell size", None,
                      k_size.literal + " GB", "unchecked", str(exc), k_size.line_no)]  # fmt: skip
    per_token = cell if both else cell / 2
    want = int(tokens.value) * per_token / GiB
    got = float(k_size.value)
    ok = abs(want - got) <= 0.5 * 10.0 ** -max(k_size.decimals, 0) + 1e-9
    what = "K and V" if both else "K"
    return [
        Check("carve", f"SGLang {what} size", f"{int(tokens.value):,} tokens x "
              f"{int(per_token):,} B ({model.name}, TP {tp})", f"{want:.2f} GB",
              k_size.literal + " GB", "consistent" if ok else "inconsistent",
              None if ok else "another model, TP size or KV dtype than assumed",
              k_size.line_no)
    ]  # fmt: skip
