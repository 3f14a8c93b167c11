"""The vLLM releases whose start-up arithmetic the planner models: regimes and defaults.

vLLM changed how it sizes the KV cache, how it prints the result and which defaults it
applies several times; a number is only "right" for a version. Each `VllmFormula` is one
regime: the releases it covers, how the available memory is found (`sizing`), how blocks
become the logged token count, and the engine defaults of those releases. Every fact
below was read from the release wheels (`pip download vllm==X --no-deps`):

- ``v0`` (<= 0.7.2, V0 engine): one cache block spans every layer (`CacheEngine`);
  ``# GPU blocks: N, # CPU blocks: M``; the profile run is `max(max_model_len, 2048)`
  tokens unless chunked prefill is on.
- ``v1-0.8`` (0.7.3 - 0.8.x, early V1): one spec for all layers, tokens =
  `num_blocks * block_size`, no estimated maximum length in the start-up error.
- ``v1`` (0.9 - 0.19): hybrid KV-cache manager (groups, page unification), tokens =
  `num_blocks // len(groups) * min_block_size`. CUDA graphs are captured after the cache
  is allocated and must fit in the `1 - gpu_memory_utilization` headroom.
- ``v1-graphs`` (0.20): `gpu_memory_utilization` default 0.9 -> 0.92 (`config/cache.py`)
  and CUDA-graph memory estimated during profiling and subtracted
  (`envs.VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS` defaults to "1" in the 0.20.0 wheel,
  although the log message added with it says "default since v0.21.0").
- ``v1-2026`` (0.21 - 0.33): as ``v1-graphs`` with tokens = `int(max_concurrency *
  max_model_len)` (`_report_kv_cache_config`, first in the 0.21.0 wheel).
- ``v1-extensible`` (>= 0.34, the default): the extensible KV cache. The cache is sized
  *after* warm-up and CUDA-graph capture from the memory then free
  (`v1/worker/extensible_kv_cache.py` `measure_kv_cache_bytes`), the minimum block count
  over ranks wins, `gpu_memory_utilization` resolves to 1.0 and `block_size` defaults to
  64 (`CacheConfig.DEFAULT_BLOCK_SIZE`).

`--vllm-version` takes a regime name or a release number (`0.33.0`, `0.10`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from capacity_planner.errors import SettingError

__all__ = [
    "DEFAULT_VERSION",
    "VLLM_FORMULAS",
    "VllmFormula",
    "get_formula",
    "release_tuple",
    "resolve_version",
]

Sizing = Literal["profile", "extensible"]


@dataclass(frozen=True)
class VllmFormula:
    """How one range of vLLM releases sizes and reports the KV cache, and its defaults."""

    name: str
    releases: str
    first_release: tuple[int, ...]
    engine: str
    token_formula: str
    concurrency_formula: str
    grouping: bool
    estimates_max_model_len: bool
    subtracts_cuda_graphs: bool
    chunked_prefill_default: bool
    default_gpu_memory_utilization: float
    default_block_size: int
    sizing: Sizing
    source: str

    @property
    def holds_back_null_block(self) -> bool:
        """0.34 checks one request against `(num_blocks - 1)` blocks (the null block)."""
        return self.sizing == "extensible"


def _f(name: str, releases: str, first: tuple[int, ...], **kw: object) -> VllmFormula:
    base: dict[str, object] = {
        "engine": "V1",
        "token_formula": "num_blocks // len(kv_cache_groups) * min_block_size",
        "concurrency_formula": "num_blocks / sum_groups cdiv(max_usage(L), page)",
        "grouping": True,
        "estimates_max_model_len": True,
        "subtracts_cuda_graphs": False,
        "chunked_prefill_default": True,
        "default_gpu_memory_utilization": 0.9,
        "default_block_size": 16,
        "sizing": "profile",
    }
    base.update(kw)
    return VllmFormula(name=name, releases=releases, first_release=first, **base)  # type: ignore[arg-type]


VLLM_FORMULAS: dict[str, VllmFormula] = {
    "v0": _f(
        "v0",
        "vLLM <= 0.7.2 (V0 engine)",
        (0,),
        engine="V0",
        token_formula="num_gpu_blocks * block_size",
        concurrency_formula="num_gpu_blocks * block_size / max_model_len",
        grouping=False,
        estimates_max_model_len=False,
        chunked_prefill_default=False,
        source="vllm/worker/worker.py determine_num_available_blocks (0.6.x wheels)",
    ),
    "v1-0.8": _f(
        "v1-0.8",
        "vLLM 0.7.3 - 0.8.x (early V1)",
        (0, 7, 3),
        token_formula="num_blocks * block_size",
        concurrency_formula="num_blocks * block_size / max_model_len",
        grouping=False,
        estimates_max_model_len=False,
        source="vllm/v1/core/kv_cache_utils.py after vLLM PR #13596",
    ),
    "v1": _f(
        "v1",
        "vLLM 0.9 - 0.19 (V1, hybrid KV-cache manager)",
        (0, 9),
        source="vllm/v1/core/kv_cache_utils.py (0.19.0 wheel)",
    ),
    "v1-graphs": _f(
        "v1-graphs",
        "vLLM 0.20 (CUDA-graph memory profiled, utilization 0.92)",
        (0, 20),
        subtracts_cuda_graphs=True,
        default_gpu_memory_utilization=0.92,
        source="vllm/envs.py, vllm/config/cache.py (0.20.0 wheel)",
    ),
    "v1-2026": _f(
        "v1-2026",
        "vLLM 0.21 - 0.33 (tokens = int(max_concurrency x max_model_len))",
        (0, 21),
        token_formula="int(max_concurrency * max_model_len)",
        subtracts_cuda_graphs=True,
        default_gpu_memory_utilization=0.92,
        source="vllm/v1/core/kv_cache_utils.py _report_kv_cache_config (0.21.0, 0.33.0 wheels)",
    ),
    "v1-extensible": _f(
        "v1-extensible",
        "vLLM >= 0.34 (extensible KV cache sized after warm-up)",
        (0, 34),
        token_formula="int(max_concurrency * max_model_len)",
        subtracts_cuda_graphs=True,
        default_gpu_memory_utilization=1.0,
        default_block_size=64,
        sizing="extensible",
        source="vllm/v1/worker/extensible_kv_cache.py, config/cache.py (0.34.0 wheel)",
    ),
}

DEFAULT_VERSION = "v1-extensible"

_RELEASE_RE = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?(?:[.+-].*)?$")


def release_tuple(text: str) -> tuple[int, ...] | None:
    """(0, 33, 0) from '0.33.0', 'v0.33', '0.34.0rc1'; None when `text` is not a release."""
    match = _RELEASE_RE.match(text.strip())
    if match is None:
        return None
    return tuple(int(g) for g in match.groups() if g is not None)


def resolve_version(text: str) -> str:
    """A regime name, or the regime of a release number ('0.33.0' -> 'v1-2026')."""
    if text in VLLM_FORMULAS:
        return text
    release = release_tuple(text)
    if release is None:
        raise SettingError(
            f"vllm_version must be a release number such as 0.34.0 or one of "
            f"{', '.join(VLLM_FORMULAS)}, got {text!r}"
        )
    if release[0] != 0:
        raise SettingError(
            f"vllm_version {text!r}: only 0.x releases are modelled (up to 0.34); "
            f"pick a regime ({', '.join(VLLM_FORMULAS)}) to model a newer one"
        )
    chosen = "v0"
    for name, formula in VLLM_FORMULAS.items():
        if release >= formula.first_release:
            chosen = name
    return chosen


def get_formula(name: str) -> VllmFormula:
    """The regime registered under `name`, or the one covering release `name`."""
    if not isinstance(name, str):
        raise SettingError(f"vllm_version must be a string, got {name!r}")
    return VLLM_FORMULAS[resolve_version(name)]
