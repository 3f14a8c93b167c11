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

from dataclasses import dataclass

from block_allocator.kv_cache_spec import cdiv
from capacity_planner._units import GiB
from capacity_planner.accounting.layout import (
    KVCacheGroup,
    LayerLayout,
    build_layout,
    pp_layer_ranges,
    resolve_kv_cache_dtype,
)
from capacity_planner.accounting.versions import DEFAULT_VERSION, VllmFormula, get_formula
from capacity_planner.errors import SettingError, UnsupportedModelError
from capacity_planner.model.spec import ModelSpec

__all__ = ["KVCacheConfig", "compute_kv_cache_config", "resolve_model_dtype"]

DEFAULT_SWAP_SPACE = 4 * GiB


def resolve_model_dtype(dtype: str, model: ModelSpec) -> str:
    """`--dtype`: 'auto' keeps a 16-bit config dtype and serves float32 configs in bfloat16."""
    key = dtype.lower()
    if key == "auto":
        return model.dtype if model.dtype in ("bfloat16", "float16") else "bfloat16"
    names = {
        "half": "float16",
        "float16": "float16",
        "fp16": "float16",
        "bfloat16": "bfloat16",
        "bf16": "bfloat16",
        "float": "float32",
        "float32": "float32",
        "fp32": "float32",
    }
    if key not in names:
        raise SettingError(f"--dtype must be auto, float16, bfloat16 or float32, got {dtype!r}")
    return names[key]


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SettingError(f"{name} must be an integer, got {value!r}")
    if value <= 0:
        raise SettingError(f"{name} must be > 0, got {value}")
    return value


@dataclass(frozen=True)
class KVCacheConfig:
    """What one vLLM version would allocate and print for a given available KV memory.

    Memory figures are per worker (per GPU); `num_blocks` is shared by every worker
    (the minimum over pipeline stages). `bytes_per_block` is what one block id costs in
    this worker: the page size times `group_size` layers (V0: one page per layer).
    """

    formula: VllmFormula
    available_bytes: int
    block_size: int
    kv_cache_dtype: str
    tensor_parallel_size: int
    pipeline_parallel_size: int
    max_model_len: int
    max_num_batched_tokens: int
    groups: tuple[KVCacheGroup, ...]
    group_size: int
    page_size_bytes: int
    bytes_per_block: int
    num_blocks: int
    stage_num_blocks: tuple[int, ...]
    num_tokens: int
    blocks_per_request: int
    max_concurrency: float
    required_bytes: int
    estimated_max_model_len: int
    num_cpu_blocks: int
    notes: tuple[str, ...]

    @property
    def fits(self) -> bool:
        """vLLM's start-up check passes: one max_model_len request fits."""
        return self.num_blocks > 0 and self.available_bytes >= self.required_bytes

    @property
    def error(self) -> str | None:
        """The exception message vLLM would raise at start-up, or None."""
        retry = "Try increasing `gpu_memory_utilization`"
        if self.available_bytes <= 0 or self.num_blocks <= 0:
            return (
                f"No available memory for the cache blocks. {retry} when initializing the engine."
            )
        if self.fits:
            return None
        tail = f"{retry} or decreasing `max_model_len` when initializing the engine."
        if self.formula.name == "v0":
            return (
                f"The model's max seq len ({self.max_model_len}) is larger than the maximum "
                f"number of tokens that can be stored in KV cache ({self.num_tokens}). {tail}"
            )
        head = (
            f"To serve at least one request with the models's max seq len ({self.max_model_len}),"
            f" ({self.required_bytes / GiB:.2f} GiB KV cache is needed, which is larger than "
            f"the available KV cache memory ({self.available_bytes / GiB:.2f} GiB)."
        )
        if self.formula.estimates_max_model_len:
            head += (
                " Based on the available memory, the estimated maximum model length is "
                f"{self.estimated_max_model_len}."
            )
        return f"{head} {tail}"

    def log_lines(self) -> tuple[str, ...]:
        """The KV-cache lines this vLLM version prints (an error line when it would fail)."""
        lines: list[str] = []
        name = self.formula.name
        if name == "v0":
            lines.append(f"# GPU blocks: {self.num_blocks}, # CPU blocks: {self.num_cpu_blocks}")
            lines.append(
                f"Maximum concurrency for {self.max_model_len} tokens per request: "
                f"{self.max_concurrency:.2f}x"
            )
        else:
            lines.append(f"Available KV cache memory: {self.available_bytes / GiB:.2f} GiB")
            if self.error is None:
                lines.append(f"GPU KV cache size: {self.num_tokens:,} tokens")
                lines.append(
                    f"Maximum concurrency for {self.max_model_len:,} tokens per request: "
                    f"{self.max_concurrency:.2f}x"
                )
        if self.error is not None:
            lines.append(f"ValueError: {self.error}")
        return tuple(lines)


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


def compute_kv_cache_config(
    model: ModelSpec,
    available_kv_bytes: int,
    *,
    block_size: int = 16,
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
) -> KVCacheConfig:
    """KV-cache layout, block count and logged numbers for `available_kv_bytes` per worker.

    `max_model_len` defaults to the model's `max_position_embeddings`;
    `max_num_batched_tokens` (only sliding-window usage depends on it) defaults to
    max_model_len. Raises `SettingError` / `ParallelConfigError` on bad input.
    """
    formula = get_formula(vllm_version)
    _positive_int("block_size", block_size)
    _positive_int("tensor_parallel_size", tensor_parallel_size)
    _positive_int("pipeline_parallel_size", pipeline_parallel_size)
    if isinstance(available_kv_bytes, bool) or not isinstance(available_kv_bytes, int):
        raise SettingError(f"available_kv_bytes must be an integer, got {available_kv_bytes!r}")
    max_len = _positive_int("max_model_len", max_model_len or model.max_position_embeddings)
    batched = _positive_int("max_num_batched_tokens", max_num_batched_tokens or max_len)
    if mamba_cache_mode not in ("none", "align", "all"):
        raise SettingError(f"mamba_cache_mode must be none, align or all, got {mamba_cache_mode!r}")
    model_dtype = resolve_model_dtype(dtype, model)
    kv_dtype = resolve_kv_cache_dtype(kv_cache_dtype, model_dtype)
    layouts = [
        build_layout(
            model,
            layers,
            block_size=block_size,
            kv_dtype=kv_dtype,
            tensor_parallel_size=tensor_parallel_size,
            state_dtype=model_dtype,
            grouping=formula.grouping,
            hybrid_kv_cache_manager=hybrid_kv_cache_manager,
            mamba_cache_mode=mamba_cache_mode,
            fp8_ds_mla=kv_cache_dtype.lower() == "fp8_ds_mla",
        )
        for layers in pp_layer_ranges(model.num_hidden_layers, pipeline_parallel_size)
    ]
    if any(not lay.groups for lay in layouts):
        raise UnsupportedModelError(
            "a worker holds no layer with a KV cache under this vLLM version's rules "
            f"({formula.name}); nothing to carve"
        )
    stage_blocks = []
    for layout in layouts:
        per_block = layout.page_size_bytes * layout.group_size
        stage_blocks.append(max(0, available_kv_bytes // per_block) if per_block else 0)
    stage = min(range(len(layouts)), key=lambda s: stage_blocks[s])
    layout, num_blocks = layouts[stage], stage_blocks[stage]
    per_block = layout.page_size_bytes * layout.group_size
    attn_bs = min(g.block_size for g in layout.groups)
    # The request-level numbers use the stage with the most KV per request.
    needed_stage = max(layouts, key=lambda lay: _memory_for_len(lay, formula, max_len, batched))
    required = _memory_for_len(needed_stage, formula, max_len, batched)
    if formula.grouping:
        num_tokens = num_blocks // len(layout.groups) * attn_bs
        per_req = layout.group_size * sum(
            g.spec.max_memory_usage_bytes(max_len, batched) for g in layout.groups
        )
        blocks_per_req = cdiv(per_req, per_block)
        concurrency = num_blocks / blocks_per_req
        if formula.name == "v1-2026":
            num_tokens = int(concurrency * max_len)
    else:
        num_tokens = num_blocks * attn_bs
        blocks_per_req = cdiv(max_len, attn_bs)
        concurrency = num_tokens / max_len
    estimate = _estimate_max_len(needed_stage, formula, available_kv_bytes, max_len, batched)
    cpu_blocks = swap_space_bytes // per_block if formula.name == "v0" and per_block else 0
    notes = tuple(dict.fromkeys(n for lay in layouts for n in lay.notes))
    return KVCacheConfig(
        formula=formula,
        available_bytes=available_kv_bytes,
        block_size=attn_bs,
        kv_cache_dtype=kv_dtype,
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
    )
