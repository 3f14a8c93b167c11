"""vLLM's start-up memory self-assessment: profile -> subtract -> carve, per worker.

Mirrors `Worker.determine_available_memory` (`vllm/v1/worker/gpu_worker.py`; V0:
`vllm/worker/worker.py`): the budget is `total x gpu_memory_utilization` of the whole
device; from it vLLM subtracts the weights ("Model loading took X GiB"), the peak of
torch allocations during a dummy forward of `max_num_batched_tokens` tokens (the
"activation peak"), memory allocated outside torch (CUDA context, NCCL, cuBLAS
workspaces), and, from vLLM 0.21, the estimated CUDA-graph memory; what is left is
carved into blocks by `kv_config.compute_kv_cache_config`. `--kv-cache-memory` skips
the profile, as in vLLM.

vLLM measures the middle three on the GPU; the planner estimates them from the config
(documented formulas below, calibrated on the logs in the README's accuracy table) and
lets an expert override each one with the value from a real log.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from block_allocator.kv_cache_spec import dtype_size
from capacity_planner._units import GiB
from capacity_planner.accounting.kv_config import (
    DEFAULT_SWAP_SPACE,
    KVCacheConfig,
    compute_kv_cache_config,
    resolve_model_dtype,
)
from capacity_planner.accounting.layout import pp_layer_ranges
from capacity_planner.accounting.versions import DEFAULT_VERSION, get_formula
from capacity_planner.errors import SettingError
from capacity_planner.gpus import GPUSpec
from capacity_planner.model.spec import ModelSpec, QuantConfig, quant_from_name

__all__ = [
    "EngineSettings",
    "MemoryProfile",
    "MemoryStep",
    "estimate_memory",
    "kv_config_for",
    "weight_bytes_per_rank",
]

# Memory outside torch's allocator after start-up: CUDA context, cuBLAS workspaces, plus
# NCCL / custom all-reduce buffers with more than one GPU. Logged values: 0.10-0.43 GiB
# (issues #10517, #12330, #13061, #16570, PR #14447).
NON_TORCH_SINGLE_GPU = int(0.35 * GiB)
NON_TORCH_MULTI_GPU = int(0.50 * GiB)
# CUDA graphs for the default capture sizes (logged 0.41-0.64 GiB; #26300).
CUDA_GRAPH_ESTIMATE = int(0.50 * GiB)
# Sampler dummy run: fp32 logits plus one same-sized temporary (softmax/sort).
SAMPLER_COPIES = 2
BIG_GPU = 70 * GiB  # vLLM serve defaults switch above ~70 GiB (H100/A100-80GB class)


@dataclass(frozen=True)
class EngineSettings:
    """vLLM's knobs (flag names in comments); defaults are vLLM's.

    `*_bytes` overrides replace an estimate by a measured value (e.g. from a log).
    """

    gpu_memory_utilization: float = 0.9  # --gpu-memory-utilization
    max_model_len: int | None = None  # --max-model-len
    block_size: int = 16  # --block-size
    kv_cache_dtype: str = "auto"  # --kv-cache-dtype
    dtype: str = "auto"  # --dtype
    tensor_parallel_size: int = 1  # --tensor-parallel-size
    pipeline_parallel_size: int = 1  # --pipeline-parallel-size
    max_num_batched_tokens: int | None = None  # --max-num-batched-tokens
    max_num_seqs: int | None = None  # --max-num-seqs
    kv_cache_memory_bytes: int | None = None  # --kv-cache-memory
    quantization: str | None = None  # --quantization
    enforce_eager: bool = False  # --enforce-eager
    vllm_version: str = DEFAULT_VERSION
    hybrid_kv_cache_manager: bool = True  # --disable-hybrid-kv-cache-manager
    mamba_cache_mode: str = "none"
    swap_space_bytes: int = DEFAULT_SWAP_SPACE  # --swap-space (V0 CPU blocks)
    weights_bytes: int | None = None
    activation_bytes: int | None = None
    non_torch_bytes: int | None = None
    cuda_graph_bytes: int | None = None

    def __post_init__(self) -> None:
        u = self.gpu_memory_utilization
        if isinstance(u, bool) or not isinstance(u, (int, float)) or not 0.0 < u <= 1.0:
            raise SettingError(f"--gpu-memory-utilization must be in (0, 1], got {u!r}")
        for name in (
            "max_model_len",
            "max_num_batched_tokens",
            "max_num_seqs",
            "kv_cache_memory_bytes",
        ):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value <= 0
            ):
                raise SettingError(f"{name} must be a positive integer, got {value!r}")
        for name in ("block_size", "tensor_parallel_size", "pipeline_parallel_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise SettingError(f"{name} must be a positive integer, got {value!r}")
        for name in ("weights_bytes", "activation_bytes", "non_torch_bytes", "cuda_graph_bytes"):
            value = getattr(self, name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 0
            ):
                raise SettingError(f"{name} must be a non-negative integer, got {value!r}")
        get_formula(self.vllm_version)


@dataclass(frozen=True)
class MemoryStep:
    """One row of the profile -> subtract -> carve table."""

    label: str
    bytes: int
    detail: str = ""


@dataclass(frozen=True)
class MemoryProfile:
    """The per-worker memory budget and what is subtracted from it."""

    total_bytes: int
    gpu_memory_utilization: float
    requested_bytes: int
    weights_bytes: int
    activation_bytes: int
    non_torch_bytes: int
    cuda_graph_bytes: int
    cuda_graphs_subtracted: bool
    available_kv_bytes: int
    profiled: bool
    profile_tokens: int
    profile_seqs: int
    steps: tuple[MemoryStep, ...]
    notes: tuple[str, ...] = field(default=())


def _quant(model: ModelSpec, settings: EngineSettings) -> QuantConfig | None:
    if settings.quantization is not None:
        return quant_from_name(settings.quantization)
    return model.quantization


def weight_bytes_per_rank(model: ModelSpec, settings: EngineSettings) -> tuple[int, str]:
    """Weights one worker loads: the largest pipeline stage's share, sharded by TP."""
    dtype = resolve_model_dtype(settings.dtype, model)
    b16 = float(dtype_size(dtype))
    quant = _quant(model, settings)
    parts = {k: float(v) for k, v in model.param_breakdown().items()}
    counted = sum(parts.values())
    if model.num_params is not None and counted > 0:
        scale = model.num_params / counted
        parts = {k: v * scale for k, v in parts.items()}
    qb = quant.bytes_per_weight if quant else b16
    linear_b = b16 if (quant is None or quant.experts_only) else qb
    layer_bytes = (parts["attention"] + parts["mlp"] + parts["mixers"] + parts["other"]) * linear_b
    experts = parts["experts"]
    if quant is not None and quant.method == "mxfp4" and model.moe is not None:
        # Assumed: the MXFP4 MoE kernels pad each expert's per-rank intermediate size to a
        # multiple of 256 (gpt-oss: 2880 -> 3072). It reproduces "Model loading took
        # 64.38 GiB" (vLLM 0.14.1, #33155); without it the estimate is 60.7 GiB.
        inter = model.moe.moe_intermediate_size // settings.tensor_parallel_size
        experts *= (-(-inter // 256) * 256) / inter
    layer_bytes += experts * qb + parts["norms"] * b16
    tp, pp = settings.tensor_parallel_size, settings.pipeline_parallel_size
    stages = pp_layer_ranges(model.num_hidden_layers, pp)
    worst = 0.0
    for s, layers in enumerate(stages):
        share = layer_bytes * len(layers) / model.num_hidden_layers
        if s == 0:
            share += parts["embeddings"] * b16
        if s == len(stages) - 1:
            share += (parts["lm_head"] if parts["lm_head"] else 0.0) * b16
        worst = max(worst, share)
    total_params = sum(parts.values())
    how = f"{total_params / 1e9:.2f}B params"
    how += f", {quant.method} {quant.bits:g}-bit" if quant else f" x {int(b16)} B ({dtype})"
    if tp > 1 or pp > 1:
        how += f", split over TP {tp} x PP {pp}"
    return math.ceil(worst / tp), how


def profile_shape(model: ModelSpec, gpu: GPUSpec, settings: EngineSettings) -> tuple[int, int, str]:
    """(tokens, sequences) of the profile run, per vLLM version defaults."""
    formula = get_formula(settings.vllm_version)
    max_len = settings.max_model_len or model.max_position_embeddings
    big = gpu.memory_bytes >= BIG_GPU
    if settings.max_num_batched_tokens is not None:
        tokens, why = settings.max_num_batched_tokens, "--max-num-batched-tokens"
    elif not formula.chunked_prefill_default:
        if max_len > 32768:
            # 512-token chunks up to 0.6.4 (issue #10517 at 35k: 0.06 GiB), 2048 after.
            tokens, why = 2048, "V0 turns on chunked prefill above 32k tokens (2048-token chunks)"
        else:
            tokens, why = max(max_len, 2048), "V0 default max(max_model_len, 2048)"
    else:
        tokens = 8192 if big else 2048
        why = f"V1 `vllm serve` default for a {'>=' if big else '<'}70 GiB GPU"
    seqs = settings.max_num_seqs or (1024 if (big and formula.engine == "V1") else 256)
    return tokens, min(seqs, tokens), why


def activation_bytes(model: ModelSpec, settings: EngineSettings, tokens: int, seqs: int) -> int:
    """Peak torch allocation of the profile run above the weights (estimate).

    Forward: per token the MLP's gate/up output (2I), its activation (I) and three
    hidden-size buffers (residual, normed input, output), or for MoE layers the fused
    kernel's caches (top_k x (3I + H)); sharded by TP. Sampler: V0 keeps one row of
    logits per dummy sequence in the model dtype; V1's dummy sampler run holds `seqs` rows
    of fp32 logits and one temporary. The peak is the larger of the two. On Llama-3.1-8B this
    gives 110,592 B/token, against 2.07 GiB at 20,000 tokens and 2.99 GiB at 29,000 in
    issue #10517.
    """
    b = dtype_size(resolve_model_dtype(settings.dtype, model))
    tp = settings.tensor_parallel_size
    h = model.hidden_size
    per_token = 3 * model.intermediate_size // tp
    if model.moe is not None and model.moe.moe_layers:
        e = model.moe
        moe = e.num_experts_per_tok * (3 * e.moe_intermediate_size // tp + h)
        moe += 3 * e.shared_intermediate_size // tp
        per_token = max(moe, per_token if len(e.moe_layers) < model.num_hidden_layers else 0)
    attn = (2 * model.num_attention_heads + 2 * model.num_kv_heads) * model.head_dim // tp
    forward = tokens * (max(per_token, attn) + 3 * h) * b
    if get_formula(settings.vllm_version).engine == "V0":
        # V0 profiles logits of the last token of each dummy sequence, in the model dtype.
        sampler = seqs * model.vocab_size * b // tp
    else:
        sampler = seqs * model.vocab_size * 4 * SAMPLER_COPIES // tp
    return int(max(forward, sampler))


def estimate_memory(model: ModelSpec, gpu: GPUSpec, settings: EngineSettings) -> MemoryProfile:
    """Budget, subtractions and available KV memory of one worker."""
    formula = get_formula(settings.vllm_version)
    total = gpu.memory_bytes
    requested = int(total * settings.gpu_memory_utilization)
    w_est, w_how = weight_bytes_per_rank(model, settings)
    weights = settings.weights_bytes if settings.weights_bytes is not None else w_est
    tokens, seqs, why = profile_shape(model, gpu, settings)
    act = settings.activation_bytes
    if act is None:
        act = activation_bytes(model, settings, tokens, seqs)
    multi = settings.tensor_parallel_size * settings.pipeline_parallel_size > 1
    non_torch = settings.non_torch_bytes
    if non_torch is None:
        non_torch = NON_TORCH_MULTI_GPU if multi else NON_TORCH_SINGLE_GPU
    graphs = settings.cuda_graph_bytes
    if graphs is None:
        graphs = 0 if settings.enforce_eager else CUDA_GRAPH_ESTIMATE
    notes: list[str] = []
    if any("vision" in n for n in model.notes):
        notes.append("vision encoder weights and its profile run are not modelled")
    mark = "" if settings.weights_bytes is None else " (given)"
    steps = [
        MemoryStep("total GPU memory", total, gpu.name),
        MemoryStep(
            f"x gpu_memory_utilization {settings.gpu_memory_utilization:.2f}",
            requested,
            "budget = total x utilisation (of total, not free, memory)",
        ),
        MemoryStep("- model weights" + mark, weights, w_how if not mark else "measured"),
        MemoryStep(
            "- activation peak" + ("" if settings.activation_bytes is None else " (given)"),
            act,
            f"profile run: {tokens} tokens ({why}), sampler {seqs} seqs",
        ),
        MemoryStep("- non-torch memory", non_torch, "CUDA context, cuBLAS, NCCL (estimate)"),
    ]
    available = requested - weights - act - non_torch
    if formula.subtracts_cuda_graphs:
        steps.append(MemoryStep("- CUDA graphs", graphs, "estimated during profiling (>= 0.21)"))
        available -= graphs
    else:
        notes.append(
            f"CUDA graphs (~{graphs / GiB:.2f} GiB) are captured after the KV cache is "
            f"allocated in {formula.name}: they must fit in the (1 - utilisation) headroom"
        )
    profiled = settings.kv_cache_memory_bytes is None
    if not profiled:
        available = int(settings.kv_cache_memory_bytes or 0)
        notes.append("--kv-cache-memory given: profiling skipped, utilisation ignored (as vLLM)")
    steps.append(MemoryStep("= available KV cache memory", available, "carved into blocks below"))
    return MemoryProfile(
        total_bytes=total,
        gpu_memory_utilization=settings.gpu_memory_utilization,
        requested_bytes=requested,
        weights_bytes=weights,
        activation_bytes=act,
        non_torch_bytes=non_torch,
        cuda_graph_bytes=graphs,
        cuda_graphs_subtracted=formula.subtracts_cuda_graphs,
        available_kv_bytes=available,
        profiled=profiled,
        profile_tokens=tokens,
        profile_seqs=seqs,
        steps=tuple(steps),
        notes=tuple(notes),
    )


def kv_config_for(model: ModelSpec, settings: EngineSettings, available: int) -> KVCacheConfig:
    """`compute_kv_cache_config` with the settings' knobs."""
    return compute_kv_cache_config(
        model,
        available,
        block_size=settings.block_size,
        kv_cache_dtype=settings.kv_cache_dtype,
        dtype=settings.dtype,
        tensor_parallel_size=settings.tensor_parallel_size,
        pipeline_parallel_size=settings.pipeline_parallel_size,
        max_model_len=settings.max_model_len,
        max_num_batched_tokens=settings.max_num_batched_tokens,
        vllm_version=settings.vllm_version,
        hybrid_kv_cache_manager=settings.hybrid_kv_cache_manager,
        mamba_cache_mode=settings.mamba_cache_mode,
        swap_space_bytes=settings.swap_space_bytes,
    )
