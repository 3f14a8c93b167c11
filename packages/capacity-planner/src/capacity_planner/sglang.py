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
  (`mem_cache/memory_pool.py`; "GB" there are GiB), the buffers holding `N + page_size`
  token slots (slot 0 is a dummy for padded writes).

Unlike vLLM, SGLang reserves a fraction of the memory free *before the load* instead of
profiling activations.

Hybrid sliding-window models (SGLang's `is_hybrid_swa_model`: gpt-oss, Llama 4, Gemma 4,
MiMo-V2, Step-3.5) get two pools (`mem_cache/swa_memory_pool.py`, `SWAKVPool`): the
profiled tokens x cell size is re-split so that the sliding-window layers hold
`swa_full_tokens_ratio` (default 0.8) times the tokens of the full layers
(`model_runner_kv_cache_mixin.py`, `set_num_tokens_hybrid_swa`, sgl-project/sglang at
001ccef):

    full_tokens = tokens x (F x n_full + S x n_swa) / (F x n_full + r x S x n_swa)
    swa_tokens  = full_tokens x r        (both rounded down to the page size)

`max_total_num_tokens` becomes the full layers' count. `--disable-hybrid-swa-memory`
keeps one pool. Other sliding-window models (Gemma 2/3, Mistral) get one pool for every
layer, as a full one.
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

# model_type of the architectures SGLang gives a hybrid SWA pool (`is_hybrid_swa_model`)
HYBRID_SWA_MODEL_TYPES = frozenset(
    {"gpt_oss", "llama4", "llama4_text", "gemma4", "gemma4_text", "mimo_v2_flash", "step3p5"}
)
DEFAULT_SWA_FULL_TOKENS_RATIO = 0.8

__all__ = [
    "DEFAULT_SWA_FULL_TOKENS_RATIO",
    "HYBRID_SWA_MODEL_TYPES",
    "SGLangPlan",
    "cell_size",
    "default_mem_fraction_static",
    "format_sglang",
    "pool_cell_sizes",
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
    # the hybrid SWA pool (None: one pool for every layer)
    swa_max_total_num_tokens: int | None = None
    swa_full_tokens_ratio: float | None = None
    full_cell_size_bytes: int = 0  # per token, over the full layers (hybrid pool only)

    @property
    def starts(self) -> bool:
        """SGLang refuses when the pool holds nothing ("Not enough memory")."""
        return self.max_total_num_tokens > 0

    @property
    def max_full_requests(self) -> float:
        return self.max_total_num_tokens / self.context_length

    @property
    def hybrid_swa(self) -> bool:
        return self.swa_max_total_num_tokens is not None

    def _pool_line(self, tokens: int, cell: int) -> str:
        # SGLang's buffers hold a dummy page beyond the tokens (slot 0 takes padded writes).
        half = (tokens + self.page_size) * cell / 2 / GiB
        return (
            f"KV Cache is allocated. dtype: torch.{self.kv_dtype}, "
            f"#tokens: {tokens}, K size: {half:.2f} GB, V size: {half:.2f} GB"
        )

    def log_line(self) -> str:
        """The line of the (full-attention) pool, or SGLang's refusal."""
        if not self.starts:
            return "RuntimeError: Not enough memory. Please try to increase --mem-fraction-static."
        if self.hybrid_swa:
            return self._pool_line(self.max_total_num_tokens, self.full_cell_size_bytes)
        return self._pool_line(self.max_total_num_tokens, self.cell_size_bytes)

    def log_lines(self) -> tuple[str, ...]:
        """Every pool line in SGLang's order: the split, the SWA pool, then the full pool."""
        if not self.starts or self.swa_max_total_num_tokens is None:
            return (self.log_line(),)
        swa_cell = self.cell_size_bytes - self.full_cell_size_bytes
        return (
            f"Use sliding window memory pool. full_layer_tokens={self.max_total_num_tokens}, "
            f"swa_layer_tokens={self.swa_max_total_num_tokens}",
            self._pool_line(self.swa_max_total_num_tokens, swa_cell),
            self.log_line(),
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
            "swa_max_total_num_tokens": self.swa_max_total_num_tokens,
            "swa_full_tokens_ratio": self.swa_full_tokens_ratio,
            "starts": self.starts,
            "log_lines": list(self.log_lines()),
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


def pool_cell_sizes(model: ModelSpec, tp: int, kv_cache_dtype: str = "auto") -> tuple[int, int]:
    """(full layers', sliding layers') K + V bytes per token on one rank: SGLang's two pools.

    The second is 0 for a model without sliding-window layers.
    """
    model_dtype = resolve_model_dtype("auto", model)
    kv = resolve_kv_dtype(kv_cache_dtype, model_dtype, mla="mla" in model.layer_kinds)
    if "sliding" not in model.layer_kinds:
        return _cell_size(model, tp, kv.element), 0
    full = _cell_size(model, tp, kv.element, ("full",))
    return full, _cell_size(model, tp, kv.element, ("sliding",))


def _cell_size(model: ModelSpec, tp: int, element: str, kinds: tuple[str, ...] = ()) -> int:
    """Per-token bytes over the layers with a KV cache (only those of `kinds`, if given)."""
    size = dtype_size(element)
    kv_layers = [k for i, k in enumerate(model.layer_kinds) if i not in model.kv_shared_layers]
    if "mla" in kv_layers and model.mla is not None:
        return (model.mla.kv_lora_rank + model.mla.qk_rope_head_dim) * len(kv_layers) * size
    attn = [k for k in kv_layers if k != "mamba" and (not kinds or k in kinds)]
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
    swa_full_tokens_ratio: float = DEFAULT_SWA_FULL_TOKENS_RATIO,
    disable_hybrid_swa_memory: bool = False,
) -> SGLangPlan:
    """SGLang's `max_total_num_tokens` for `model` on `gpu` (one rank)."""
    f = mem_fraction_static
    if f is not None:
        f = check_fraction("--mem-fraction-static", f)
    ratio = check_fraction("--swa-full-tokens-ratio", swa_full_tokens_ratio)
    if isinstance(page_size, bool) or not isinstance(page_size, int) or page_size < 1:
        raise SettingError(f"page_size must be an integer >= 1, got {page_size!r}")
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
    swa_tokens = None
    full_cell = 0
    hybrid = (
        model.model_type in HYBRID_SWA_MODEL_TYPES
        and "sliding" in model.layer_kinds
        and not disable_hybrid_swa_memory
    )
    if hybrid and tokens > 0:
        full_cell = _cell_size(model, tensor_parallel_size, kv.element, ("full",))
        swa_cell = cell - full_cell
        full = int(tokens * cell / (full_cell + ratio * swa_cell))
        swa_tokens = int(full * ratio)
        swa_tokens -= swa_tokens % page_size
        tokens = full
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
        swa_max_total_num_tokens=swa_tokens,
        swa_full_tokens_ratio=ratio if swa_tokens is not None else None,
        full_cell_size_bytes=full_cell,
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
    ]
    if p.swa_max_total_num_tokens is not None:
        lines.insert(
            -1,
            f"  split at swa_full_tokens_ratio {p.swa_full_tokens_ratio}: the sliding-window "
            f"layers hold {p.swa_max_total_num_tokens:,} tokens, the full layers",
        )
    lines += ["", "SGLang would print:", *(f"  {line}" for line in p.log_lines())]
    return "\n".join(lines)
