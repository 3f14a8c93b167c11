"""`KVCacheConfig`: what one vLLM version allocates and prints for a given KV memory.

The result of `kv_config.compute_kv_cache_config`, with the start-up check's verdict
(`fits`, `error` worded per release: `_check_enough_kv_cache_memory` and, in 0.34,
`_more_kv_cache_memory_hint`) and the KV lines that release prints (`log_lines`:
`_report_kv_cache_config`, `update_kv_cache_capacity`; V0 `# GPU blocks`).
"""

from __future__ import annotations

from dataclasses import dataclass

from capacity_planner._units import fmt_gib
from capacity_planner.accounting.layout import KVCacheGroup
from capacity_planner.accounting.versions import VllmFormula

__all__ = ["KVCacheConfig"]


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
    deciding_stage: int = 0
    stage_available_bytes: tuple[int, ...] = ()
    gpu_memory_utilization: float = 1.0  # only for the wording of 0.34's error hint

    @property
    def fits(self) -> bool:
        """vLLM's start-up check passes: one max_model_len request fits."""
        return self.num_blocks > 0 and self.checked_bytes >= self.required_bytes

    @property
    def error(self) -> str | None:
        """The exception message vLLM would raise at start-up, or None."""
        docs = (
            "See https://docs.vllm.ai/en/latest/configuration/conserving_memory/ for more details."
        )
        if self.formula.sizing == "extensible":
            # `_more_kv_cache_memory_hint(after_warmup=True)` in 0.34.
            graphs = (
                " CUDA graphs take less with fewer or smaller capture sizes in the compilation "
                "config."
            )
            used_by = "the model, its activations, CUDA graphs and warmup"
            u = self.gpu_memory_utilization
            if u < 1.0:
                retry = (
                    f"The KV cache gets what is left after {used_by} within "
                    f"`gpu_memory_utilization`={u:g}; increase it (with the extensible KV cache "
                    "it defaults to 1.0) or decrease `max_model_len` or `max_num_seqs`."
                    f"{graphs}"
                )
            else:
                retry = (
                    f"The extensible KV cache already takes all device memory left after "
                    f"{used_by}; decrease `max_model_len` or `max_num_seqs`, or the model needs "
                    f"a device with more memory.{graphs}"
                )
        else:
            retry = "Try increasing `gpu_memory_utilization` when initializing the engine."
        if self.available_bytes <= 0 or self.num_blocks <= 0:
            tail = f" {docs}" if self.formula.sizing == "extensible" else ""
            return f"No available memory for the cache blocks. {retry}{tail}"
        if self.fits:
            return None
        if self.formula.name == "v0":
            return (
                f"The model's max seq len ({self.max_model_len}) is larger than the maximum "
                f"number of tokens that can be stored in KV cache ({self.num_tokens}). "
                "Try increasing `gpu_memory_utilization` or decreasing `max_model_len` "
                "when initializing the engine."
            )
        whose = "model's" if self.formula.sizing == "extensible" else "models's"
        head = (
            f"To serve at least one request with the {whose} max seq len ({self.max_model_len}),"
            f" ({fmt_gib(self.required_bytes)} KV cache is needed, which is larger than "
            f"the available KV cache memory ({fmt_gib(self.checked_bytes)})."
        )
        if self.formula.estimates_max_model_len and self.estimated_max_model_len > 0:
            head += (
                " Based on the available memory, the estimated maximum model length is "
                f"{self.estimated_max_model_len}."
            )
        if self.formula.sizing == "extensible":
            return f"{head} {retry} Decreasing `max_model_len` also reduces what is needed. {docs}"
        return (
            f"{head} Try increasing `gpu_memory_utilization` or decreasing `max_model_len` "
            "when initializing the engine."
        )

    @property
    def checked_bytes(self) -> int:
        """Memory the start-up check compares with one request's need.

        0.34 checks the blocks it will commit, less the null block the pool holds back;
        earlier releases check the profiled available memory.
        """
        if self.formula.holds_back_null_block:
            return max(0, self.num_blocks - 1) * self.bytes_per_block
        return max(0, self.available_bytes)

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
            shown = max(0, self.available_bytes)  # a shortfall is the error's job, not a figure
            lines.append(f"Available KV cache memory: {fmt_gib(shown)}")
            if self.error is None:
                size = f"GPU KV cache size: {self.num_tokens:,} tokens"
                conc = (
                    f"Maximum concurrency for {self.max_model_len:,} tokens per request: "
                    f"{self.max_concurrency:.2f}x"
                )
                if self.formula.token_formula.startswith("int("):
                    lines.append(f"{size}, {conc}")  # one line from 0.21
                else:
                    lines += [size, conc]
        if self.error is not None:
            lines.append(f"ValueError: {self.error}")
        return tuple(lines)
