"""The vLLM releases whose start-up arithmetic the planner models, by name.

vLLM changed how it carves memory into blocks and how it prints the result several
times; a number is only "right" for a version. Each `VllmFormula` names the releases it
models and the source it was read from (see ../../docs and the package README):

- ``v0``: the V0 engine (vLLM <= 0.7). One cache block spans every layer
  (`CacheEngine.get_cache_block_size`); prints ``# GPU blocks: N, # CPU blocks: M`` and
  ``Maximum concurrency for L tokens per request: (N*block_size/L)x``. The profile run
  is one forward of `max_num_batched_tokens` tokens (= `max(max_model_len, 2048)` unless
  chunked prefill is on, which V0 turns on by itself above 32k tokens, with 2048-token
  chunks; 512 up to 0.6.4).
- ``v1-0.8``: the first V1 releases (0.7.3 - 0.8.4, PR #13596): one spec for all layers,
  ``GPU KV cache size: num_blocks*block_size tokens``, concurrency = tokens / L, and a
  start-up check without the estimated maximum length (added by PR #16168).
- ``v1``: V1 with the hybrid KV-cache manager (vLLM 0.9 - 0.20; `kv_cache_utils.py` at
  001cabc): groups, page-size unification, ``num_blocks // len(groups) * min_block_size``
  tokens, concurrency from per-request blocks, and the estimated max model length. CUDA
  graphs are captured after the KV cache is allocated, so they are not subtracted.
- ``v1-graphs``: as ``v1`` plus CUDA-graph memory estimated during profiling and
  subtracted from the budget (default from vLLM 0.21, per a 2026 issue log).
- ``v1-2026``: as ``v1-graphs`` but "GPU KV cache size" is derived from the concurrency,
  ``int(max_concurrency * max_model_len)`` (quoted from `_report_kv_cache_config` in
  issue #51041; the 2026 log in mitchross/talos-argocd-proxmox#1995 prints 302,921 tokens
  = int(2.3111 x 131,072)). The first
  release with this formula is not known to us.
"""

from __future__ import annotations

from dataclasses import dataclass

from capacity_planner.errors import SettingError

__all__ = ["DEFAULT_VERSION", "VLLM_FORMULAS", "VllmFormula", "get_formula"]


@dataclass(frozen=True)
class VllmFormula:
    """How one range of vLLM releases sizes and reports the KV cache."""

    name: str
    releases: str
    engine: str
    token_formula: str
    concurrency_formula: str
    grouping: bool
    estimates_max_model_len: bool
    subtracts_cuda_graphs: bool
    chunked_prefill_default: bool
    source: str


VLLM_FORMULAS: dict[str, VllmFormula] = {
    "v0": VllmFormula(
        name="v0",
        releases="vLLM <= 0.7 (V0 engine)",
        engine="V0",
        token_formula="num_gpu_blocks * block_size",
        concurrency_formula="num_gpu_blocks * block_size / max_model_len",
        grouping=False,
        estimates_max_model_len=False,
        subtracts_cuda_graphs=False,
        chunked_prefill_default=False,
        source="vllm/worker/worker.py determine_num_available_blocks; issues #10517, #12330",
    ),
    "v1-0.8": VllmFormula(
        name="v1-0.8",
        releases="vLLM 0.7.3 - 0.8.4 (early V1)",
        engine="V1",
        token_formula="num_blocks * block_size",
        concurrency_formula="num_blocks * block_size / max_model_len",
        grouping=False,
        estimates_max_model_len=False,
        subtracts_cuda_graphs=False,
        chunked_prefill_default=True,
        source="vllm/v1/core/kv_cache_utils.py after PR #13596; issue #15871",
    ),
    "v1": VllmFormula(
        name="v1",
        releases="vLLM 0.9 - 0.20 (V1, hybrid KV-cache manager)",
        engine="V1",
        token_formula="num_blocks // len(kv_cache_groups) * min_block_size",
        concurrency_formula="num_blocks / cdiv(per_request_bytes, page_size * group_size)",
        grouping=True,
        estimates_max_model_len=True,
        subtracts_cuda_graphs=False,
        chunked_prefill_default=True,
        source="vllm/v1/core/kv_cache_utils.py @001cabc; issues #25350, #27508",
    ),
    "v1-graphs": VllmFormula(
        name="v1-graphs",
        releases="vLLM >= 0.21 (CUDA-graph memory profiled)",
        engine="V1",
        token_formula="num_blocks // len(kv_cache_groups) * min_block_size",
        concurrency_formula="num_blocks / cdiv(per_request_bytes, page_size * group_size)",
        grouping=True,
        estimates_max_model_len=True,
        subtracts_cuda_graphs=True,
        chunked_prefill_default=True,
        source="issue #26300 (CUDA-graph-aware estimation), PR #21489",
    ),
    "v1-2026": VllmFormula(
        name="v1-2026",
        releases="2026 vLLM releases (first one unknown)",
        engine="V1",
        token_formula="int(max_concurrency * max_model_len)",
        concurrency_formula="num_blocks / cdiv(per_request_bytes, page_size * group_size)",
        grouping=True,
        estimates_max_model_len=True,
        subtracts_cuda_graphs=True,
        chunked_prefill_default=True,
        source="issue #51041 (quotes _report_kv_cache_config)",
    ),
}

DEFAULT_VERSION = "v1"


def get_formula(name: str) -> VllmFormula:
    """The formula registered under `name` ('v0', 'v1-0.8', 'v1', 'v1-graphs')."""
    try:
        return VLLM_FORMULAS[name]
    except KeyError:
        raise SettingError(
            f"vllm_version must be one of {', '.join(VLLM_FORMULAS)}, got {name!r}"
        ) from None
