"""`EngineSettings`: vLLM's engine arguments the accounting reads, checked, with defaults.

Field names are vLLM's (`vllm/engine/arg_utils.py` `EngineArgs`). `None` means "vLLM's
default for the modelled version": `gpu_memory_utilization` resolves to 0.9, 0.92 or
1.0 and `block_size` to 16 or 64 (`versions.py`). The `*_bytes` fields replace an
estimate by a measured value (e.g. from a log). Every check runs in `__post_init__`, so
a bad value fails at construction with the parameter named and the object never exists.
"""

from __future__ import annotations

from dataclasses import dataclass

from capacity_planner._checks import (
    check_fraction,
    check_non_negative_int,
    check_positive_int,
)
from capacity_planner.accounting.kv_config import DEFAULT_SWAP_SPACE, check_block_size
from capacity_planner.accounting.versions import DEFAULT_VERSION, VllmFormula, get_formula
from capacity_planner.errors import SettingError

__all__ = ["SAMPLER_PATHS", "SPECULATIVE_METHODS", "EngineSettings"]

# `--speculative-config '{"method": ...}'` values whose draft holds weights and KV layers.
SPECULATIVE_METHODS = ("eagle", "eagle3", "mtp", "draft_model", "ngram")
# How the start-up profile's dummy sampler pass runs (`terms.sampler_path`): PyTorch's
# sort-based top-k/top-p, FlashInfer's sampling kernels, or model runner V2's profile,
# which computes the logits and skips top-k/top-p (None: the release's default).
SAMPLER_PATHS = ("pytorch", "flashinfer", "logits-only")


@dataclass(frozen=True)
class EngineSettings:
    """vLLM's knobs (flag names in comments); None = the version's default."""

    gpu_memory_utilization: float | None = None  # --gpu-memory-utilization
    max_model_len: int | None = None  # --max-model-len (-1: fit to memory)
    block_size: int | None = None  # --block-size
    kv_cache_dtype: str = "auto"  # --kv-cache-dtype
    dtype: str = "auto"  # --dtype
    tensor_parallel_size: int = 1  # --tensor-parallel-size
    pipeline_parallel_size: int = 1  # --pipeline-parallel-size
    max_num_batched_tokens: int | None = None  # --max-num-batched-tokens
    max_num_seqs: int | None = None  # --max-num-seqs
    kv_cache_memory_bytes: int | None = None  # --kv-cache-memory
    quantization: str | None = None  # --quantization
    enforce_eager: bool = False  # --enforce-eager
    vllm_version: str = DEFAULT_VERSION  # regime name or release number
    hybrid_kv_cache_manager: bool = True  # --disable-hybrid-kv-cache-manager
    mamba_cache_mode: str = "none"  # --mamba-cache-mode
    swap_space_bytes: int = DEFAULT_SWAP_SPACE  # --swap-space (V0 CPU blocks)
    enable_expert_parallel: bool = False  # --enable-expert-parallel
    speculative_method: str | None = None  # --speculative-config {"method": ...}
    num_speculative_tokens: int | None = None  # --speculative-config {"num_speculative_tokens"}
    sampler: str | None = None  # VLLM_USE_FLASHINFER_SAMPLER / VLLM_USE_V2_MODEL_RUNNER
    weights_bytes: int | None = None
    activation_bytes: int | None = None
    non_torch_bytes: int | None = None
    cuda_graph_bytes: int | None = None
    draft_weights_bytes: int | None = None

    def __post_init__(self) -> None:
        formula = get_formula(self.vllm_version)  # raises on an unknown version
        if self.gpu_memory_utilization is not None:
            check_fraction("--gpu-memory-utilization", self.gpu_memory_utilization)
        if self.max_model_len != -1:  # -1: vLLM's auto-fit (`plan` resolves it)
            for name in ("max_model_len",):
                if getattr(self, name) is not None:
                    check_positive_int(name, getattr(self, name))
        elif formula.engine == "V0":
            raise SettingError("max_model_len=-1 (auto-fit) needs a V1 engine (vLLM >= 0.7.3)")
        for name in ("max_num_batched_tokens", "max_num_seqs"):
            if getattr(self, name) is not None:
                check_positive_int(name, getattr(self, name))
        for name in ("tensor_parallel_size", "pipeline_parallel_size"):
            check_positive_int(name, getattr(self, name))
        if self.kv_cache_memory_bytes is not None:
            check_positive_int("kv_cache_memory_bytes", self.kv_cache_memory_bytes)
        if self.block_size is not None:
            check_block_size(self.block_size, formula)
        for name in (
            "weights_bytes",
            "activation_bytes",
            "non_torch_bytes",
            "cuda_graph_bytes",
            "draft_weights_bytes",
            "swap_space_bytes",
        ):
            if getattr(self, name) is not None:
                check_non_negative_int(name, getattr(self, name))
        if self.mamba_cache_mode not in ("none", "align", "all"):
            raise SettingError(
                f"mamba_cache_mode must be none, align or all, got {self.mamba_cache_mode!r}"
            )
        method = self.speculative_method
        if method is not None and method not in SPECULATIVE_METHODS:
            raise SettingError(
                f"speculative method must be one of {', '.join(SPECULATIVE_METHODS)}, "
                f"got {method!r}"
            )
        if self.num_speculative_tokens is not None:
            check_positive_int("num_speculative_tokens", self.num_speculative_tokens)
        if self.sampler is not None and self.sampler not in SAMPLER_PATHS:
            raise SettingError(
                f"sampler must be one of {', '.join(SAMPLER_PATHS)}, got {self.sampler!r}"
            )

    @property
    def formula(self) -> VllmFormula:
        return get_formula(self.vllm_version)

    @property
    def resolved_gpu_memory_utilization(self) -> float:
        """The utilisation vLLM uses: the flag, else the version's default."""
        if self.gpu_memory_utilization is not None:
            return float(self.gpu_memory_utilization)
        if self.formula.sizing == "extensible" and self.kv_cache_memory_bytes is not None:
            return 0.92  # --kv-cache-memory turns the extensible cache off
        return self.formula.default_gpu_memory_utilization

    @property
    def resolved_block_size(self) -> int:
        return self.block_size or self.formula.default_block_size

    @property
    def extensible(self) -> bool:
        """0.34's extensible KV cache: on by default, off with --kv-cache-memory."""
        return self.formula.sizing == "extensible" and self.kv_cache_memory_bytes is None
