"""The memory terms vLLM measures at start-up, estimated from the config, for one rank.

vLLM measures these on the GPU (`gpu_worker.determine_available_memory`,
`compile_or_warm_up_model`); the planner estimates each from the model's shapes. Every
function takes the pipeline stage a rank belongs to, because stages differ: the first
holds the embeddings (and a vision encoder), the last the lm_head, the sampler and a
speculative draft. Tensor-parallel ranks of one stage hold the same shapes.

- weights: parameters x bytes, sharded by TP, the stage's share of the layers;
- forward peak: the profile run's largest per-token buffers x `max_num_batched_tokens`;
- sampler: the dummy sampler pass over `max_num_seqs` rows of the full vocabulary. V1
  all-gathers the logits, so every tensor-parallel rank holds all of them; the bytes per
  logit depend on the path that release takes (`sampler_path`): PyTorch's sort-based
  top-k/top-p (37 B: logits, their fp32 copy, the sorted values with int64 indices and
  the sort's workspace, masks, softmax), FlashInfer's sampling kernels (15 B: logits, fp32
  copy, masked logits, probabilities) or, under model runner V2, a profile that computes
  the logits and skips the rest (the model dtype's 2 B). docs/MEMORY_MODEL.md section 2
  has the code it is read from and the records it is checked against;
- encoder: a vision tower's weights and its profile pass over the encoder budget (the
  largest dummy images that fit it, as patches; docs/MEMORY_MODEL.md section 3);
- draft: an EAGLE/EAGLE-3 head (one decoder layer, the 3H->H fusion, its lm_head) or
  MTP layers (`num_nextn_predict_layers` full decoder layers).
"""

from __future__ import annotations

import itertools
import math

from block_allocator.kv_cache_spec import dtype_size
from capacity_planner._units import GiB
from capacity_planner.accounting.kv_config import resolve_model_dtype
from capacity_planner.accounting.layout import pp_layer_ranges
from capacity_planner.accounting.settings import EngineSettings
from capacity_planner.accounting.versions import release_tuple
from capacity_planner.gpus import GPUSpec
from capacity_planner.model.parts import QuantConfig, quant_from_name
from capacity_planner.model.spec import ModelSpec

__all__ = [
    "CUDA_CONTEXT",
    "CUDA_GRAPH_ESTIMATE",
    "SAMPLER_BYTES_PER_LOGIT",
    "counts_whole_placeholder",
    "draft_layers",
    "draft_weight_bytes",
    "encoder_activation_bytes",
    "encoder_held_bytes",
    "encoder_items",
    "encoder_tokens",
    "forward_activation_bytes",
    "local_experts",
    "non_torch_bytes",
    "profile_shape",
    "sampler_bytes",
    "sampler_path",
    "tp_rank_classes",
    "weight_bytes_per_rank",
    "weight_bytes_per_stage",
]

# Memory outside torch's allocator that grows after the start-up snapshot: cuBLAS
# workspaces, plus NCCL / custom all-reduce buffers with more than one GPU. Logged
# values: 0.10-0.43 GiB (vLLM issues #10517, #12330, #13061, #16570, PR #14447).
NON_TORCH_SINGLE_GPU = int(0.35 * GiB)
NON_TORCH_MULTI_GPU = int(0.50 * GiB)
# CUDA context and allocator state present before vLLM's first snapshot ("Free memory
# on device (78.7/79.2 GiB) on startup" style lines: 0.4-0.6 GiB on one H100).
CUDA_CONTEXT = int(0.5 * GiB)
# CUDA graphs for the default capture sizes (logged 0.41-0.64 GiB; vLLM issue #26300).
CUDA_GRAPH_ESTIMATE = int(0.50 * GiB)
# Bytes per logit of the dummy sampler pass on each path ("logits-only": the model dtype).
SAMPLER_BYTES_PER_LOGIT = {"pytorch": 37, "flashinfer": 15}
BIG_GPU = 70 * GiB  # vLLM's serve defaults switch at 70 GiB (H100/H200 class)
HUGE_GPU = 160 * GiB  # and again at 160 GiB (B200 class) from 0.34


def _quant(model: ModelSpec, settings: EngineSettings) -> QuantConfig | None:
    if settings.quantization is not None:
        return quant_from_name(settings.quantization)
    return model.quantization


def local_experts(model: ModelSpec, settings: EngineSettings, tp_rank: int) -> int:
    """Experts on `tp_rank` under `--enable-expert-parallel` (vLLM's linear placement: the
    first `num_experts % ep_size` ranks hold one more)."""
    if model.moe is None:
        return 0
    ep = settings.tensor_parallel_size
    base, extra = divmod(model.moe.num_experts, ep)
    return base + (1 if tp_rank < extra else 0)


def _stage_bytes(
    model: ModelSpec, settings: EngineSettings, tp_rank: int
) -> tuple[list[float], str]:
    """Bytes one rank of each stage loads: dense parts / TP, experts / TP or by placement."""
    dtype = resolve_model_dtype(settings.dtype, model)
    b16 = float(dtype_size(dtype))
    tp = settings.tensor_parallel_size
    quant = _quant(model, settings)
    parts = {k: float(v) for k, v in model.param_breakdown().items()}
    counted = sum(parts.values())
    if model.num_params is not None and counted > 0:
        scale = model.num_params / counted
        parts = {k: v * scale for k, v in parts.items()}
    qb = quant.bytes_per_weight if quant else b16
    linear_b = b16 if (quant is None or quant.experts_only) else qb
    dense = (parts["attention"] + parts["mlp"] + parts["mixers"] + parts["other"]) * linear_b
    dense = (dense + parts["norms"] * b16 * tp) / tp  # norms are replicated, not sharded
    experts = parts["experts"] * qb
    ep = settings.enable_expert_parallel and model.moe is not None
    if ep and model.moe is not None:
        experts *= local_experts(model, settings, tp_rank) / model.moe.num_experts
    else:
        experts /= tp
    if quant is not None and quant.method == "mxfp4" and model.moe is not None:
        # Assumed: the MXFP4 MoE kernels pad each expert's per-rank intermediate size to a
        # multiple of 256 (gpt-oss: 2880 -> 3072); it reproduces the 64.38 GiB "Model
        # loading took" of vLLM 0.14.1 (vLLM issue #33155) where no padding gives 60.7.
        inter = model.moe.moe_intermediate_size // (1 if ep else tp)
        experts *= (-(-inter // 256) * 256) / inter
    layer_bytes = dense + experts
    stages = pp_layer_ranges(model.num_hidden_layers, settings.pipeline_parallel_size)
    out = []
    for s, layers in enumerate(stages):
        share = layer_bytes * len(layers) / model.num_hidden_layers
        if s == 0:
            share += (parts["embeddings"] + parts["encoder"]) * b16 / tp
        if s == len(stages) - 1:
            share += parts["lm_head"] * b16 / tp
        out.append(share)
    how = f"{sum(parts.values()) / 1e9:.2f}B params"
    how += f", {quant.method} {quant.bits:g}-bit" if quant else f" x {int(b16)} B ({dtype})"
    pp = settings.pipeline_parallel_size
    if tp > 1 or pp > 1:
        how += f", split over TP {tp} x PP {pp}"
    if ep and model.moe is not None:
        how += f", {local_experts(model, settings, tp_rank)} of {model.moe.num_experts} experts"
    return out, how


def weight_bytes_per_stage(
    model: ModelSpec, settings: EngineSettings, tp_rank: int = 0
) -> tuple[list[int], str]:
    """Weights one rank of each pipeline stage loads, and how they were counted."""
    shares, how = _stage_bytes(model, settings, tp_rank)
    return [math.ceil(s) for s in shares], how


def weight_bytes_per_rank(model: ModelSpec, settings: EngineSettings) -> tuple[int, str]:
    """Weights of the most loaded rank (the largest stage's share on TP rank 0)."""
    per_stage, how = weight_bytes_per_stage(model, settings)
    return max(per_stage), how


def tp_rank_classes(model: ModelSpec, settings: EngineSettings) -> tuple[tuple[int, int], ...]:
    """Groups of identical tensor-parallel ranks as (first, last) rank.

    Ranks differ when V0 gathers the logits to the driver (rank 0 alone runs the sampler)
    or when expert parallelism places a number of experts that does not divide evenly.
    """
    tp = settings.tensor_parallel_size
    if tp == 1:
        return ((0, 0),)
    cuts = {0, tp}
    if settings.formula.engine == "V0":
        cuts.add(1)
    if settings.enable_expert_parallel and model.moe is not None:
        extra = model.moe.num_experts % tp
        if extra:
            cuts.add(extra)
    edges = sorted(cuts)
    return tuple((a, b - 1) for a, b in itertools.pairwise(edges))


def profile_shape(model: ModelSpec, gpu: GPUSpec, settings: EngineSettings) -> tuple[int, int, str]:
    """(tokens, sequences) of the profile run, per the version's `vllm serve` defaults."""
    formula = settings.formula
    max_len = settings.max_model_len or model.max_position_embeddings
    big = gpu.memory_bytes >= BIG_GPU and "a100" not in gpu.name.lower()
    huge = gpu.memory_bytes >= HUGE_GPU and formula.sizing == "extensible"
    if settings.max_num_batched_tokens is not None:
        tokens, why = settings.max_num_batched_tokens, "--max-num-batched-tokens"
    elif not formula.chunked_prefill_default:
        if max_len > 32768:
            tokens, why = 2048, "V0 turns on chunked prefill above 32k tokens (2048-token chunks)"
        else:
            tokens, why = max(max_len, 2048), "V0 default max(max_model_len, 2048)"
    else:
        tokens = 16384 if huge else 8192 if big else 2048
        why = "`vllm serve` default for this GPU size"
    seqs = settings.max_num_seqs or (1024 if (big and formula.engine == "V1") else 256)
    return tokens, min(seqs, tokens), why


def forward_activation_bytes(model: ModelSpec, settings: EngineSettings, tokens: int) -> int:
    """Peak torch allocation of a forward of `tokens` tokens above the weights.

    Per token: the MLP's gate/up output (2I) and activation (I) and three hidden-size
    buffers (residual, normed input, output), or for MoE layers the fused kernel's caches
    (top_k x (3I + H)); sharded by TP. Llama-3.1-8B: 110,592 B/token, against 2.07 GiB at
    20,000 tokens and 2.99 GiB at 29,000 logged in vLLM issue #10517.
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
    return int(tokens * (max(per_token, attn) + 3 * h) * b)


def sampler_path(model: ModelSpec, settings: EngineSettings) -> str:
    """How the release's profile runs the dummy sampler: "pytorch", "flashinfer", "logits-only".

    Read from the wheels: up to 0.20 the V1 runner's top-k/top-p is PyTorch's unless
    FlashInfer is installed and enabled (an optional extra in 0.11, opt-in in 0.19); 0.21
    turns FlashInfer on by default; model runner V2, the default for dense models from
    0.25 (and for every model in 0.31), profiles the logits only and runs the full sampler
    in a warm-up after the KV cache is allocated; 0.34 sizes the cache after that warm-up.
    `settings.sampler` overrides the default (what the log's start-up lines show).
    """
    if settings.sampler is not None:
        return settings.sampler
    name = settings.formula.name
    if name == "v1-2026":
        dense = model.moe is None and model.mamba is None
        return "logits-only" if dense else "flashinfer"
    if name == "v1-extensible":
        return "flashinfer"
    return "pytorch"


def sampler_bytes(model: ModelSpec, settings: EngineSettings, seqs: int) -> int:
    """The dummy sampler pass over `seqs` rows of the vocabulary (last stage only).

    V0 gathers the logits to the driver (TP rank 0), which keeps one row per dummy
    sequence in the model dtype; V1 all-gathers them to every rank, whose pass costs the
    bytes per logit of its `sampler_path`.
    """
    b = dtype_size(resolve_model_dtype(settings.dtype, model))
    if settings.formula.engine == "V0":
        return seqs * model.vocab_size * b  # the full logits, on the driver rank only
    path = sampler_path(model, settings)
    per_logit = b if path == "logits-only" else SAMPLER_BYTES_PER_LOGIT[path]
    return per_logit * model.vocab_size * seqs


def counts_whole_placeholder(settings: EngineSettings) -> bool:
    """Whether the release divides the encoder budget by an item's whole placeholder.

    0.11.0 and 0.12.0 count the placeholder with its start, end and break tokens
    (`profiling.get_mm_max_contiguous_tokens`); 0.10.0 and 0.13.0 on count the embeddings
    only (`_get_mm_num_tokens`, later `multimodal/encoder_budget.get_mm_max_toks_per_item`:
    `get_num_embeds`). A regime name stands for its releases: "v1" (0.9-0.19) keeps the
    0.11 reading its Gemma-3 records print, the later regimes count embeddings.
    """
    release = release_tuple(settings.vllm_version)
    if release is not None:
        return (0, 11) <= release[:2] < (0, 13)
    return settings.formula.name == "v1"


def encoder_items(model: ModelSpec, settings: EngineSettings, tokens: int) -> tuple[int, int]:
    """(dummy items, encoder budget) of the profile's encoder pass; (0, 0) when not known.

    V1 (`gpu_model_runner.profile_run`) encodes `budget // per_item` dummy items of the
    largest size, where the budget is `max(max_num_batched_tokens, per_item)`
    (`encoder_cache_manager.compute_mm_encoder_budget`) and `per_item` is the item's whole
    placeholder or its embeddings, as the release counts (`counts_whole_placeholder`).
    """
    v = model.vision
    if v is None or v.max_tokens_per_item is None or settings.formula.engine == "V0":
        return 0, 0
    per_item = v.max_tokens_per_item
    if not counts_whole_placeholder(settings) and v.item_embeds:
        per_item = v.item_embeds
    budget = max(tokens, per_item)
    return budget // per_item, budget


def encoder_tokens(model: ModelSpec, settings: EngineSettings, tokens: int) -> tuple[int, int]:
    """(image tokens, patches) of the encoder's profile pass; (0, 0) without a vision tower.

    The dummy items of `encoder_items`, each sending `item_patches` patches through the
    tower (`spatial_merge_size^2` per token for the Qwen2-VL family, one 896 x 896 crop
    of 4,096 patches per Gemma-3 image). Where the family's largest item is not modelled
    (and on V0) the pass is taken as `tokens` patches; where the family is modelled but
    its config lacks a field vLLM reads (`unsized_reason`), the pass is left out.
    """
    v = model.vision
    if v is None or v.unsized_reason is not None:
        return 0, 0  # an unsized tower's pass is left out (the model's notes say why)
    items, _ = encoder_items(model, settings, tokens)
    patches = v.item_patches
    if items == 0 or patches is None or v.max_tokens_per_item is None:
        return tokens, tokens
    return items * v.max_tokens_per_item, items * patches


def encoder_held_bytes(model: ModelSpec, settings: EngineSettings, tokens: int) -> int:
    """The dummy encoder outputs vLLM 0.11-0.12 keeps through the profile's forward pass.

    `profile_run` in the 0.11.0 and 0.12.0 wheels widens each item's output to
    `(encoder_budget, hidden_size)` when it is shorter than the budget ("the embeddings
    that encoder outputs are scattered onto") and caches them while the dummy forward and
    sampler run; 0.10.0 and 0.13.0 keep the outputs as they are. Only a release number
    (not a regime name) turns the term on. Gemma-3-27B's 31 items at an 8,192-token
    budget hold 2.5 GiB this way; Qwen2.5-VL's one 16,384-token image at its own budget,
    nothing.
    """
    v = model.vision
    release = release_tuple(settings.vllm_version)
    if v is None or release is None or not (0, 11) <= release[:2] < (0, 13):
        return 0
    items, budget = encoder_items(model, settings, tokens)
    embeds = v.item_embeds
    if items == 0 or embeds is None or embeds >= budget:
        return 0
    b = dtype_size(resolve_model_dtype(settings.dtype, model))
    return items * budget * model.hidden_size * b


def encoder_activation_bytes(model: ModelSpec, settings: EngineSettings, tokens: int) -> int:
    """A vision tower's profile pass: the dummy images' patches through one encoder layer.

    Per patch: one layer's buffers (QKV, attention output, MLP: 2 intermediate widths, 3
    when SwiGLU-gated) in the model dtype, sharded by TP, plus the input pixels, which
    stay on the GPU in float32 through the whole pass (`pixel_values`). Qwen2.5-VL-7B's
    16,384-token image (65,536 patches) comes to 2.17 GiB on one GPU; Gemma-3's seven
    896 x 896 images of a 2,048-token budget under 0.11-0.12 (28,672 patches through
    SigLIP) to 0.77 GiB.
    """
    if model.vision is None:
        return 0
    v = model.vision
    _, patches = encoder_tokens(model, settings, tokens)
    b = dtype_size(resolve_model_dtype(settings.dtype, model))
    mlp = (3 if v.gated_mlp else 2) * v.intermediate_size
    per_patch = (4 * v.hidden_size + mlp) * b // settings.tensor_parallel_size
    return int(patches * (per_patch + 4 * v.pixels_per_patch))


def draft_layers(model: ModelSpec, settings: EngineSettings) -> int:
    """Decoder layers a speculative draft adds (each with its own KV cache)."""
    method = settings.speculative_method
    if method in ("eagle", "eagle3"):
        return 1
    if method == "mtp":
        return max(1, model.mtp_layers)
    return 0


def draft_weight_bytes(model: ModelSpec, settings: EngineSettings) -> int:
    """Weights of the draft on one rank of the last stage (estimate; TP-sharded).

    EAGLE/EAGLE-3: one decoder layer of the target's attention shape with a dense MLP,
    the 3H -> H fusion of the target's hidden states (EAGLE-3) and its own lm_head (the
    embeddings are the target's). MTP: `num_nextn_predict_layers` layers shaped like the
    target's last layer plus a 2H -> H projection each.
    """
    if settings.draft_weights_bytes is not None:
        return settings.draft_weights_bytes
    n = draft_layers(model, settings)
    if n == 0:
        return 0
    b = dtype_size(resolve_model_dtype(settings.dtype, model))
    h = model.hidden_size
    parts = model.param_breakdown()
    layers = model.num_hidden_layers
    per_layer = (parts["attention"] + parts["mlp"] + parts["experts"] + parts["mixers"]) / layers
    if settings.speculative_method in ("eagle", "eagle3"):
        attn = parts["attention"] / layers
        params = attn + 3 * h * model.intermediate_size + 3 * h * h + model.vocab_size * h
        bytes_per = float(b)
    else:
        params = n * (per_layer + 2 * h * h)
        quant = _quant(model, settings)
        bytes_per = quant.bytes_per_weight if quant and not quant.experts_only else float(b)
    return math.ceil(params * bytes_per / settings.tensor_parallel_size)


def non_torch_bytes(settings: EngineSettings) -> int:
    """Memory outside torch that appears after the start-up snapshot (estimate)."""
    if settings.non_torch_bytes is not None:
        return settings.non_torch_bytes
    multi = settings.tensor_parallel_size * settings.pipeline_parallel_size > 1
    return NON_TORCH_MULTI_GPU if multi else NON_TORCH_SINGLE_GPU
