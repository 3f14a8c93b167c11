"""Carve an available KV memory into blocks and report it the way a vLLM version does.

`compute_kv_cache_config` is the public entry point (also the API the explain-log
command builds on): given a model, the vLLM knobs and the bytes one worker has left for
the KV cache, it returns the page size per group, `num_blocks`, the "GPU KV cache size"
token count, the "Maximum concurrency" figure, and vLLM's start-up check with the
estimated maximum model length. It mirrors `get_kv_cache_config_from_groups`,
`_report_kv_cache_config`, `get_max_concurrency_for_kv_cache_config`,
`_check_enough_kv_cache_memory` and `estimate_max_model_len`
(`vllm/v1/core/kv_cache_utils.py`), and the V0 `CacheEngine` arithmetic, per
`versions.py`.
"""

from __future__ import annotations

from collections.abc import Sequence

from block_allocator.kv_cache_spec import cdiv
from capacity_planner._checks import check_non_negative_int, check_positive_int
from capacity_planner._units import GiB
from capacity_planner.accounting.kv_dtypes import resolve_kv_dtype
from capacity_planner.accounting.kv_result import KVCacheConfig
from capacity_planner.accounting.layout import (
    LayerLayout,
    build_layout,
    pp_layer_ranges,
)
from capacity_planner.accounting.versions import DEFAULT_VERSION, VllmFormula, get_formula
from capacity_planner.errors import SettingError, UnsupportedModelError
from capacity_planner.model.defaults import canonical_dtype
from capacity_planner.model.spec import LayerKind, ModelSpec

__all__ = [
    "KVCacheConfig",
    "check_block_size",
    "compute_kv_cache_config",
    "resolve_model_dtype",
]

DEFAULT_SWAP_SPACE = 4 * GiB


def resolve_model_dtype(dtype: str, model: ModelSpec) -> str:
    """`--dtype`: 'auto' keeps a 16-bit config dtype and serves float32 configs in bfloat16."""
    key = dtype.lower()
    if key == "auto":
        return model.dtype if model.dtype in ("bfloat16", "float16") else "bfloat16"
    name = canonical_dtype(key)
    if name is None:
        raise SettingError(f"--dtype must be auto, float16, bfloat16 or float32, got {dtype!r}")
    return name


def _memory_for_len(layout: LayerLayout, formula: VllmFormula, length: int, batched: int) -> int:
    """Bytes one request of `length` tokens needs (the start-up check's 'needed')."""
    if formula.name == "v0":
        spec = layout.groups[0].spec
        return cdiv(length, spec.block_size) * layout.page_size_bytes * layout.group_size
    if not formula.grouping:
        return sum(s.max_memory_usage_bytes(length, batched) for s in layout.layer_specs)
    page = layout.page_size_bytes
    blocks = sum(cdiv(g.spec.max_memory_usage_bytes(length, batched), page) for g in layout.groups)
    return layout.group_size * page * blocks


def _estimate_max_len(
    layout: LayerLayout, formula: VllmFormula, available: int, max_len: int, batched: int
) -> int:
    """Largest length whose one request fits (vLLM bisects the same function)."""
    lo, hi = 0, max_len
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _memory_for_len(layout, formula, mid, min(batched, mid)) <= available:
            lo = mid
        else:
            hi = mid - 1
    return lo


def check_block_size(block_size: object, formula: VllmFormula, *, mla: bool = False) -> int:
    """`--block-size` as vLLM accepts it for this version on a CUDA GPU.

    V0 offers the choices 8, 16, 32, 64, 128 (`BlockSize` in `config.py`); V1's CUDA
    attention backends take multiples of 16 (FlashAttention's `MultipleOf(16)`), and
    FlashMLA takes exactly 64 (`get_supported_kernel_block_sizes`).
    """
    value = check_positive_int("block_size", block_size)
    if formula.engine == "V0":
        if value not in (8, 16, 32, 64, 128):
            raise SettingError(f"--block-size must be one of 8, 16, 32, 64, 128 in V0, got {value}")
    elif mla and formula.sizing == "extensible" and value != 64:
        raise SettingError(f"--block-size must be 64 for MLA models (FlashMLA), got {value}")
    elif value % 16:
        raise SettingError(
            f"--block-size must be a multiple of 16 for vLLM's CUDA attention backends "
            f"(FlashAttention), got {value}"
        )
    return value


def compute_kv_cache_config(
    model: ModelSpec,
    available_kv_bytes: int | Sequence[int],
    *,
    block_size: int | None = None,
    kv_cache_dtype: str = "auto",
    dtype: str = "auto",
    tensor_parallel_size: int = 1,
    pipeline_parallel_size: int = 1,
    max_model_len: int | None = None,
    max_num_batched_tokens: int | None = None,
    vllm_version: str = DEFAULT_VERSION,
    hybrid_kv_cache_manager: bool = True,
    mamba_cache_mode: str = "none",
    swap_space_bytes: int = DEFAULT_SWAP_SPACE,
    draft_layers: int = 0,
    gpu_memory_utilization: float = 1.0,
) -> KVCacheConfig:
    """KV-cache layout, block count and logged numbers for the memory each worker has.

    `available_kv_bytes` is one figure for every worker, or one per pipeline stage (the
    ranks of a stage are identical). `block_size` defaults to the version's default
    (16, or 64 from 0.34); `max_model_len` to the model's `max_position_embeddings`;
    `max_num_batched_tokens` (only sliding-window usage depends on it) to max_model_len.
    Raises `SettingError` / `ParallelConfigError` on bad input.
    """
    formula = get_formula(vllm_version)
    is_mla = "mla" in model.layer_kinds
    if block_size is None:
        block_size = formula.default_block_size
    check_block_size(block_size, formula, mla=is_mla)
    check_positive_int("tensor_parallel_size", tensor_parallel_size)
    check_positive_int("pipeline_parallel_size", pipeline_parallel_size)
    ranges = pp_layer_ranges(model.num_hidden_layers, pipeline_parallel_size)
    # A speculative draft's layers live with the last stage and share its KV pool.
    draft_kind: tuple[LayerKind, ...] = ("mla",) if "mla" in model.layer_kinds else ("full",)
    extra = [() for _ in ranges[:-1]] + [
        draft_kind * check_non_negative_int("draft_layers", draft_layers)
    ]
    if isinstance(available_kv_bytes, (list, tuple)):
        per_stage = list(available_kv_bytes)
        if len(per_stage) != len(ranges):
            raise SettingError(
                f"available_kv_bytes has {len(per_stage)} entries for {len(ranges)} pipeline stages"
            )
    else:
        per_stage = [available_kv_bytes] * len(ranges)
    for value in per_stage:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingError(f"available_kv_bytes must be an integer, got {value!r}")
    max_len = check_positive_int("max_model_len", max_model_len or model.max_position_embeddings)
    batched = check_positive_int("max_num_batched_tokens", max_num_batched_tokens or max_len)
    if mamba_cache_mode not in ("none", "align", "all"):
        raise SettingError(f"mamba_cache_mode must be none, align or all, got {mamba_cache_mode!r}")
    model_dtype = resolve_model_dtype(dtype, model)
    kv = resolve_kv_dtype(
        kv_cache_dtype, model_dtype, mla=is_mla, all_choices=formula.first_release >= (0, 21)
    )
    layouts = [
        build_layout(
            model,
            layers,
            block_size=block_size,
            kv_dtype=kv,
            tensor_parallel_size=tensor_parallel_size,
            state_dtype=model_dtype,
            grouping=formula.grouping,
            hybrid_kv_cache_manager=hybrid_kv_cache_manager,
            mamba_cache_mode=mamba_cache_mode,
            extra_kinds=more,
        )
        for layers, more in zip(ranges, extra, strict=True)
    ]
    if any(not lay.groups for lay in layouts):
        raise UnsupportedModelError(
            "a worker holds no layer with a KV cache under this vLLM version's rules "
            f"({formula.name}); nothing to carve"
        )
    stage_blocks = []
    for layout, avail in zip(layouts, per_stage, strict=True):
        per_block = layout.page_size_bytes * layout.group_size
        stage_blocks.append(max(0, avail // per_block) if per_block else 0)
    # vLLM takes the minimum block count over every worker (`get_kv_cache_configs`).
    stage = min(range(len(layouts)), key=lambda s: stage_blocks[s])
    layout, num_blocks = layouts[stage], stage_blocks[stage]
    available = per_stage[stage]
    per_block = layout.page_size_bytes * layout.group_size
    attn_bs = min(g.block_size for g in layout.groups)
    # The request-level numbers use the stage with the most KV per request.
    needed_stage = max(layouts, key=lambda lay: _memory_for_len(lay, formula, max_len, batched))
    required = _memory_for_len(needed_stage, formula, max_len, batched)
    if formula.grouping:
        num_tokens = num_blocks // len(layout.groups) * attn_bs
        if formula.sizing == "extensible":
            # 0.33+: each group's table takes cdiv(usage, page) blocks of the shared pool.
            blocks_per_req = sum(
                cdiv(g.spec.max_memory_usage_bytes(max_len, batched), g.page_size_bytes)
                for g in layout.groups
            )
        else:
            per_req = layout.group_size * sum(
                g.spec.max_memory_usage_bytes(max_len, batched) for g in layout.groups
            )
            blocks_per_req = cdiv(per_req, per_block)
        concurrency = num_blocks / blocks_per_req
        if formula.token_formula.startswith("int("):
            num_tokens = int(concurrency * max_len)
    else:
        num_tokens = num_blocks * attn_bs
        blocks_per_req = cdiv(max_len, attn_bs)
        concurrency = num_tokens / max_len
    checked = available
    if formula.holds_back_null_block:
        checked = max(0, num_blocks - 1) * per_block
    estimate = _estimate_max_len(needed_stage, formula, checked, max_len, batched)
    cpu_blocks = swap_space_bytes // per_block if formula.name == "v0" and per_block else 0
    notes = tuple(dict.fromkeys(n for lay in layouts for n in lay.notes))
    if kv.name.startswith("turboquant"):
        notes += ("turboquant keeps its boundary layers in the model dtype; sized as packed",)
    shown_dtype = kv.name if kv.element == "uint8" else kv.element
    return KVCacheConfig(
        formula=formula,
        available_bytes=available,
        block_size=attn_bs,
        kv_cache_dtype=shown_dtype,
        tensor_parallel_size=tensor_parallel_size,
        pipeline_parallel_size=pipeline_parallel_size,
        max_model_len=max_len,
        max_num_batched_tokens=batched,
        groups=layout.groups,
        group_size=layout.group_size,
        page_size_bytes=layout.page_size_bytes,
        bytes_per_block=per_block,
        num_blocks=num_blocks,
        stage_num_blocks=tuple(stage_blocks),
        num_tokens=num_tokens,
        blocks_per_request=blocks_per_req,
        max_concurrency=concurrency,
        required_bytes=required,
        estimated_max_model_len=estimate,
        num_cpu_blocks=cpu_blocks,
        notes=notes,
        deciding_stage=stage,
        stage_available_bytes=tuple(per_stage),
        gpu_memory_utilization=gpu_memory_utilization,
    )
