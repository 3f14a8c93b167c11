"""`--engine sglang`: SGLang's `max_total_num_tokens` for the same model and GPU.

Read from the SGLang 0.5.23 wheel (`pip download sglang --no-deps`):

- the token pool is sized once the weights are loaded (`ModelRunner` with
  `pool_configurator.DefaultPoolConfigurator`): `rest = free_after_load -
  free_before_load x (1 - mem_fraction_static)`, `max_total_num_tokens = rest //
  cell_size`, rounded down to a multiple of `page_size`;
- `cell_size = kv_heads_per_rank x (head_dim + v_head_dim) x layers x dtype` (MLA:
  `(kv_lora_rank + qk_rope_head_dim) x layers x dtype`, no TP split);
- `mem_fraction_static`, when not given, is `(capacity - reserved) / capacity` rounded to
  0.001, with `reserved = 512 MB + 1.5 MB x max(chunked_prefill_size, 2048) + tp x pp / 8 x
  1 GB + graph reserve (2 MB per decode batch size up to max_bs)`, at least 10 GB on GPUs
  above 60 GB (`arg_groups/memory_hook.py`);
- it logs `KV Cache is allocated. dtype: ..., #tokens: N, K size: X GB, V size: Y GB`
  (`mem_cache/memory_pool.py`; "GB" there are GiB).

Unlike vLLM, SGLang reserves a fraction of the memory free *before the load* instead of
profiling activations; sliding-window models get one pool for every layer unless
`--swa-full-tokens-ratio` splits it (not modelled: every layer is sized as full).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from block_allocator.kv_cache_spec import dtype_size, kv_heads_per_rank
from capacity_planner._checks import check_fraction
from capacity_planner._units import GiB, MiB
from capacity_planner.accounting.kv_config import resolve_model_dtype
from capacity_planner.accounting.kv_dtypes import resolve_kv_dtype
from capacity_planner.accounting.settings import EngineSettings
from capacity_planner.accounting.terms import CUDA_CONTEXT, weight_bytes_per_rank
from capacity_planner.errors import ParallelConfigError, SettingError
from capacity_planner.gpus import GPUSpec
from capacity_planner.model.spec import ModelSpec

__all__ = [
    "SGLangPlan",
    "cell_size",
    "default_mem_fraction_static",
    "format_sglang",
    "sglang_plan",
]


@dataclass(frozen=True)
class SGLangPlan:
    """SGLang's token pool on one rank and the line it logs."""

    model: str
    gpu: str
    mem_fraction_static: float
    free_before_load_bytes: int
    weights_bytes: int
    rest_bytes: int
    cell_size_bytes: int
    max_total_num_tokens: int
    page_size: int
    context_length: int
    kv_dtype: str

    @property
    def starts(self) -> bool:
        """SGLang refuses when the pool holds nothing ("Not enough memory")."""
        return self.max_total_num_tokens > 0

    @property
    def max_full_requests(self) -> float:
        return self.max_total_num_tokens / self.context_length

    def log_line(self) -> str:
        if not self.starts:
            return "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static."
        half = self.max_total_num_tokens * self.cell_size_bytes / 2 / GiB
        return (
            f"KV Cache is allocated. dtype: torch.{self.kv_dtype}, "
            f"#tokens: {self.max_total_num_tokens}, K size: {half:.2f} GB, V size: {half:.2f} GB"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine": "sglang",
            "model": self.model,
            "gpu": self.gpu,
            "mem_fraction_static": self.mem_fraction_static,
            "free_before_load_bytes": self.free_before_load_bytes,
            "weights_bytes": self.weights_bytes,
            "rest_bytes": self.rest_bytes,
            "cell_size_bytes": self.cell_size_bytes,
            "max_total_num_tokens": self.max_total_num_tokens,
            "page_size": self.page_size,
            "starts": self.starts,
            "log_lines": [self.log_line()],
        }


def default_mem_fraction_static(gpu: GPUSpec, tensor_parallel_size: int = 1) -> float:
    """SGLang's default `--mem-fraction-static` for this GPU (pre-capture sizing)."""
    capacity_mb = gpu.memory_bytes / MiB
    chunked_prefill = 8192 if capacity_mb > 60 * 1024 else 4096 if capacity_mb > 35 * 1024 else 2048
    reserved = 512 + 1.5 * max(chunked_prefill, 2048) + tensor_parallel_size / 8 * 1024
    reserved += 2 * 256  # decode CUDA graphs up to max_bs 256
    if capacity_mb > 60 * 1024:
        reserved = max(reserved, 10 * 1024)
    return round((capacity_mb - reserved) / capacity_mb, 3)


def cell_size(model: ModelSpec, tp: int, kv_cache_dtype: str = "auto") -> int:
    """Bytes one token's K and V take on one rank, over every layer with a KV cache."""
    model_dtype = resolve_model_dtype("auto", model)
    kv = resolve_kv_dtype(kv_cache_dtype, model_dtype, mla="mla" in model.layer_kinds)
    return _cell_size(model, tp, kv.element)


def _cell_size(model: ModelSpec, tp: int, element: str) -> int:
    size = dtype_size(element)
    kv_layers = [k for i, k in enumerate(model.layer_kinds) if i not in model.kv_shared_layers]
    if "mla" in kv_layers and model.mla is not None:
        return (model.mla.kv_lora_rank + model.mla.qk_rope_head_dim) * len(kv_layers) * size
    attn = [k for k in kv_layers if k != "mamba"]
    total = 0
    for kind in attn:
        head_dim, heads = model.attention_shape(kind)
        try:
            per_rank = kv_heads_per_rank(heads, tp)
        except ValueError as exc:
            raise ParallelConfigError(str(exc)) from None
        total += per_rank * 2 * head_dim * size
    return total


def sglang_plan(
    model: ModelSpec,
    gpu: GPUSpec,
    *,
    tensor_parallel_size: int = 1,
    mem_fraction_static: float | None = None,
    kv_cache_dtype: str = "auto",
    page_size: int = 1,
    context_length: int | None = None,
    weights_bytes: int | None = None,
) -> SGLangPlan:
    """SGLang's `max_total_num_tokens` for `model` on `gpu` (one rank)."""
    f = mem_fraction_static
    if f is not None:
        f = check_fraction("--mem-fraction-static", f)
    settings = EngineSettings(tensor_parallel_size=tensor_parallel_size)
    if f is None:
        f = default_mem_fraction_static(gpu, tensor_parallel_size)
    model_dtype = resolve_model_dtype("auto", model)
    kv = resolve_kv_dtype(kv_cache_dtype, model_dtype, mla="mla" in model.layer_kinds)
    if kv.element == "uint8":
        raise SettingError(
            f"--kv-cache-dtype {kv.name} is a vLLM packing; SGLang mode models auto and fp8"
        )
    weights = (
        weights_bytes if weights_bytes is not None else weight_bytes_per_rank(model, settings)[0]
    )
    free_before = gpu.memory_bytes - CUDA_CONTEXT
    rest = int(free_before * f) - weights
    cell = _cell_size(model, tensor_parallel_size, kv.element)
    tokens = max(0, rest) // cell if cell else 0
    tokens -= tokens % page_size
    return SGLangPlan(
        model=model.name,
        gpu=gpu.name,
        mem_fraction_static=float(f),
        free_before_load_bytes=free_before,
        weights_bytes=weights,
        rest_bytes=rest,
        cell_size_bytes=cell,
        max_total_num_tokens=tokens,
        page_size=page_size,
        context_length=context_length or model.max_position_embeddings,
        kv_dtype="float8_e4m3fn" if kv.element == "fp8" else kv.element,
    )


def format_sglang(p: SGLangPlan) -> str:
    lines = [
        f"{p.model} on {p.gpu}, modelling SGLang (max_total_num_tokens)",
        f"  free before load            {p.free_before_load_bytes / GiB:>9.2f} GiB",
        f"  x mem_fraction_static {p.mem_fraction_static:.3f}",
        f"  - weights                   {p.weights_bytes / GiB:>9.2f} GiB",
        f"  = rest for the token pool   {max(0, p.rest_bytes) / GiB:>9.2f} GiB",
        f"  cell size (all layers)      {p.cell_size_bytes:>9,} B/token",
        f"  max_total_num_tokens        {p.max_total_num_tokens:>9,}  "
        f"({p.max_full_requests:.2f}x requests of {p.context_length:,} tokens)",
        "",
        "SGLang would print:",
        f"  {p.log_line()}",
    ]
    return "\n".join(lines)
