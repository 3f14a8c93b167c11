"""The vLLM start-up lines explain-log understands, and the facts each one yields.

Every pattern is tied to the vLLM code that prints it (paths in vllm-project/vllm):

- V0 `worker/worker.py` ``determine_num_available_blocks``: the one-line "Memory profiling
  results: total_gpu_memory=... kv_cache_size=..." (~v0.6.4), the multi-line table of
  PR #10511 (v0.6.5), and "the current vLLM instance can use total_gpu_memory (T) x
  gpu_memory_utilization (u) = R ... the rest of the memory reserved for KV Cache is K"
  (v0.6.6 to the last V0 releases, also printed by early V1 workers).
- V0 `executor/*_executor.py`: "# GPU blocks: B, # CPU blocks: C" (later "# cuda blocks")
  and, from v0.6, "Maximum concurrency for L tokens per request: X.XXx".
- V1 `v1/worker/gpu_model_runner.py` "Model loading took X GiB", `v1/worker/gpu_worker.py`
  "Available KV cache memory: Y GiB", `v1/core/kv_cache_utils.py` "# GPU blocks: B"
  (v0.7.0-v0.7.2) then "GPU KV cache size: N tokens" (PR #13596) and the concurrency line.
- The start-up errors: V0 ``raise_if_cache_size_invalid`` and V1
  ``_check_enough_kv_cache_memory`` (estimated maximum model length from PR #16168).
- vLLM >= 0.34 `v1/worker/extensible_kv_cache.py`: "Memory after warmup: ... N KV cache
  blocks (X GiB) fit within the requested R GiB", "Extended KV cache to N blocks (G GiB)",
  "Remapping the KV cache from A to B blocks"; "CUDA graph memory profiling is enabled"
  (0.20+, `gpu_worker.py`).
- SGLang (sgl-project/sglang): `mem_cache/memory_pool.py` "KV Cache is allocated. #tokens:
  N, K size: X GB, V size: Y GB" (one line per pool), the hybrid sliding-window split "Use
  sliding window memory pool. full_layer_tokens=F, swa_layer_tokens=S" and `SWAKVPool`'s
  "SWAKVPool mem usage: T GB, swa size: S, full size: F".
- Settings: the "Initializing ... LLM engine (vX) with config: ..." line, the
  "non-default args: {...}" dict, the older "args: Namespace(...)" dump.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable
from dataclasses import dataclass

from capacity_planner.explain.clean import CleanLine, split_top_level

__all__ = ["SETTING_KEYS", "SGLANG_SETTING_KEYS", "Fact", "Value", "extract_facts"]

Value = int | float | str | bool

# Settings a log may reveal, under vLLM's engine-argument names.
SETTING_KEYS = (
    "model",
    "dtype",
    "max_model_len",
    "block_size",
    "tensor_parallel_size",
    "pipeline_parallel_size",
    "gpu_memory_utilization",
    "kv_cache_dtype",
    "enforce_eager",
    "quantization",
    "enable_prefix_caching",
    "max_num_batched_tokens",
    "max_num_seqs",
    "swap_space",
    "num_gpu_blocks_override",
    "kv_cache_memory_bytes",
    "cpu_offload_gb",
)

# Spellings in config lines / arg dumps -> the names above.
_ALIASES = {
    "max_seq_len": "max_model_len",
    "tensor_parallel": "tensor_parallel_size",
    "tp": "tensor_parallel_size",
    "kv_cache_memory": "kv_cache_memory_bytes",
    "model_tag": "model",
}


@dataclass(frozen=True, slots=True)
class Fact:
    """One number or setting read from one line. `literal` is the text as printed."""

    key: str
    value: Value
    line_no: int
    source: str | None
    rank: int | None
    literal: str

    @property
    def decimals(self) -> int:
        """Digits printed after the decimal point: the rounding the log applied."""
        _, _, frac = self.literal.partition(".")
        return len(frac.rstrip("x"))


# Beyond these a "number" is line noise (a digit run), not something vLLM printed.
_MAX_INT = 10**15
_MAX_FLOAT = 1e12


def _int(text: str) -> int:
    value = int(text.replace(",", "").replace("_", ""))
    if abs(value) > _MAX_INT:
        raise ValueError(f"implausible count {text[:20]}...")
    return value


def _float(text: str) -> float:
    value = float(text.replace(",", ""))
    if not abs(value) <= _MAX_FLOAT:  # also rejects nan and inf
        raise ValueError(f"implausible value {text[:20]}...")
    return value


_N = r"(-?\d[\d,]*)"
_F = r"(-?\d+(?:\.\d+)?)"
_GIB = r"\s*Gi?B\b"

# (regex, [(key, converter) per group]); a None key skips its group.
_Conv = Callable[[str], Value]
_PATTERNS: list[tuple[re.Pattern[str], list[tuple[str | None, _Conv]]]] = [
    (re.compile(r"Loading model weights took\s*" + _F + _GIB), [("weights_loaded_gib", _float)]),
    (re.compile(r"Model loading took\s*" + _F + _GIB), [("weights_loaded_gib", _float)]),
    (
        re.compile(
            r"total_gpu_memory\s*\(\s*"
            + _F
            + r"\s*GiB\)\s*x\s*gpu_memory_utilization\s*\(\s*"
            + _F
            + r"\s*\)\s*=\s*"
            + _F
            + _GIB
        ),
        [("total_gpu_gib", _float), ("gpu_memory_utilization", _float), ("requested_gib", _float)],
    ),
    (re.compile(r"total_gpu_memory[=\s]+" + _F + _GIB), [("total_gpu_gib", _float)]),
    (
        re.compile(r"gpu_memory_utilization[=\s]+" + _F + r"(?![\d.])"),
        [("gpu_memory_utilization", _float)],
    ),
    (re.compile(r"the current vLLM instance can use\s+" + _F + _GIB), [("requested_gib", _float)]),
    (re.compile(r"model weights take\s*" + _F + _GIB), [("weights_gib", _float)]),
    (re.compile(r"non_torch_memory(?:\s+takes|=|\s)\s*" + _F + _GIB), [("non_torch_gib", _float)]),
    (
        re.compile(r"PyTorch activation peak memory(?:\s+takes)?\s*" + _F + _GIB),
        [("activation_gib", _float)],
    ),
    (re.compile(r"peak_torch_memory=" + _F + _GIB), [("peak_torch_gib", _float)]),
    (
        re.compile(r"the rest of the memory reserved for KV Cache is\s*" + _F + _GIB),
        [("available_kv_gib", _float)],
    ),
    (re.compile(r"kv_cache_size=" + _F + _GIB), [("available_kv_gib", _float)]),
    (re.compile(r"available_kv_cache_memory\s+" + _F + _GIB), [("available_kv_gib", _float)]),
    (re.compile(r"Maximum concurrency:\s*" + _F + "x"), [("max_concurrency", _float)]),
    (re.compile(r"Available KV cache memory:\s*" + _F + _GIB), [("available_kv_gib", _float)]),
    (
        re.compile(r"Free memory on device \(\s*" + _F + r"\s*/\s*" + _F + r"\s*GiB\)"),
        [("free_on_startup_gib", _float), ("total_gpu_gib", _float)],
    ),
    (
        re.compile(r"Desired GPU memory utilization is \(\s*" + _F + r"\s*,\s*" + _F + _GIB),
        [("gpu_memory_utilization", _float), ("requested_gib", _float)],
    ),
    (re.compile(r"(?<![\d.])" + _F + r"\s*GiB for weight"), [("weights_gib", _float)]),
    (re.compile(r"(?<![\d.])" + _F + r"\s*GiB for peak activation"), [("activation_gib", _float)]),
    (re.compile(r"(?<![\d.])" + _F + r"\s*GiB for non-torch memory"), [("non_torch_gib", _float)]),
    (re.compile(r"(?<![\d.])" + _F + r"\s*GiB for CUDAGraph memory"), [("cuda_graph_gib", _float)]),
    (
        re.compile(r"Graph capturing finished in\s*[\d.]+\s*secs?,\s*took\s*" + _F + _GIB),
        [("cuda_graph_captured_gib", _float)],
    ),
    (re.compile(r"GPU KV cache size:\s*" + _N + r"\s*tokens"), [("kv_cache_tokens", _int)]),
    (
        re.compile(r"Maximum concurrency for\s*" + _N + r"\s*tokens per request:\s*" + _F + "x"),
        [("concurrency_len", _int), ("max_concurrency", _float)],
    ),
    (
        re.compile(
            r"max seq len \((\d+)\) is larger than the maximum number of tokens that can be "
            r"stored in KV cache \((\d+)\)"
        ),
        [("error_max_seq_len", _int), ("error_kv_tokens", _int)],
    ),
    (
        re.compile(
            r"To serve at least one request with the models?'s max seq len \((\d+)\),\s*\(\s*"
            + _F
            + r"\s*GiB KV cache is needed, which is larger than the available KV cache "
            r"memory \(\s*" + _F + _GIB
        ),
        [
            ("error_max_seq_len", _int),
            ("error_needed_gib", _float),
            ("error_available_gib", _float),
        ],
    ),
    (re.compile(r"estimated maximum model length is (\d+)"), [("error_estimated_max_len", _int)]),
    (re.compile(r"No available memory for the cache blocks"), []),
    (re.compile(r"Setting attention block size to (\d+) tokens"), [("hybrid_block_size", _int)]),
    (re.compile(r"Using max model len (\d+)"), [("max_model_len", _int)]),
    (
        re.compile(r"Chunked prefill is enabled with max_num_batched_tokens=(\d+)"),
        [("max_num_batched_tokens", _int)],
    ),
    (
        re.compile(r"Overriding num_gpu_blocks=(\d+) with num_gpu_blocks_override=(\d+)"),
        [("profiled_gpu_blocks", _int), ("num_gpu_blocks_override", _int)],
    ),
    (
        re.compile(r"Auto-fit max_model_len: reduced from (\d+) to (\d+)"),
        [("auto_fit_from", _int), ("max_model_len", _int)],
    ),
    (re.compile(r"vLLM API server version\s*v?(\d[\w.+-]*)"), [("vllm_version", str)]),
    # vLLM >= 0.34, `v1/worker/extensible_kv_cache.py`.
    (
        re.compile(
            r"Memory after warmup:\s*"
            + _F
            + r"\s*GiB free,\s*"
            + _F
            + r"\s*GiB committed to the KV cache,\s*"
            + _F
            + r"\s*GiB kept for transient activations\s*\(\s*"
            + _F
            + r"\s*GiB allocated at peak,\s*"
            + _F
            + r"\s*GiB of torch reservation growth\);\s*"
            + _N
            + r"\s*KV cache blocks\s*\(\s*"
            + _F
            + r"\s*GiB\)\s*fit within the requested\s*"
            + _F
            + _GIB
        ),
        [
            ("warmup_free_gib", _float),
            ("warmup_committed_gib", _float),
            ("warmup_kept_gib", _float),
            ("warmup_peak_gib", _float),
            ("warmup_growth_gib", _float),
            ("warmup_blocks", _int),
            ("warmup_blocks_gib", _float),
            ("requested_gib", _float),
        ],
    ),
    (
        re.compile(r"Extended KV cache to\s*" + _N + r"\s*blocks\s*\(\s*" + _F + _GIB),
        [("extended_blocks", _int), ("extended_gib", _float)],
    ),
    (
        re.compile(r"Remapping the KV cache from\s*" + _N + r"\s*to\s*" + _N + r"\s*blocks"),
        [("remap_from_blocks", _int), ("remap_to_blocks", _int)],
    ),
    # SGLang, `mem_cache/memory_pool.py` and the post-capture resize.
    (
        re.compile(
            r"KV [Cc]ache (?:is allocated|allocated|VA upper bound)\.\s*(?:dtype:\s*[\w.]+,\s*)?"
            r"#tokens:\s*" + _N + r",\s*K size:\s*" + _F + r"\s*GB,\s*V size:\s*" + _F
        ),
        [("sglang_tokens", _int), ("sglang_k_gib", _float), ("sglang_v_gib", _float)],
    ),
    (
        re.compile(
            r"KV [Cc]ache (?:is allocated|allocated)\.\s*(?:dtype:\s*[\w.]+,\s*)?#tokens:\s*"
            + _N
            + r",\s*KV size:\s*"
            + _F
            + r"\s*GB"
        ),
        [("sglang_tokens", _int), ("sglang_kv_gib", _float)],
    ),
    # SGLang's hybrid sliding-window pool: the split of `HybridSWAPoolConfigurator`
    # (`model_executor/pool_configurator.py`; "Sliding" capitalised in older
    # `model_runner.py`) and the total `SWAKVPool` prints (`mem_cache/swa_memory_pool.py`).
    (
        re.compile(
            r"Use [Ss]liding window memory pool\.\s*full_layer_tokens=\s*"
            + _N
            + r",\s*swa_layer_tokens=\s*"
            + _N
        ),
        [("sglang_full_tokens", _int), ("sglang_swa_tokens", _int)],
    ),
    (
        re.compile(r"Use [Ss]liding window memory pool \(all SWA\)\.\s*swa_layer_tokens=\s*" + _N),
        [("sglang_all_swa_tokens", _int)],
    ),
    (
        re.compile(
            r"SWAKVPool mem usage:\s*"
            + _F
            + r"\s*GB,\s*swa size:\s*"
            + _N
            + r",\s*full size:\s*"
            + _N
        ),
        [
            ("sglang_pools_gib", _float),
            ("sglang_pool_swa_size", _int),
            ("sglang_pool_full_size", _int),
        ],
    ),
    # SGLang's scheduler (`managers/scheduler.py`) restates the pool's size.
    (
        re.compile(
            r"max_total_num_tokens=(\d+),\s*(?:chunked_prefill_size=\S+\s*)?max_prefill_tokens="
            r"\d+,.*?context_len=(\d+)"
        ),
        [("sglang_max_total_tokens", _int), ("sglang_context_len", _int)],
    ),
    # SGLang's settings for the split: the launch command or the `ServerArgs(...)` dump,
    # which also opens every start-up.
    (re.compile(r"--page[-_]size[=\s]+(\d+)"), [("sglang_page_size", _int)]),
    (re.compile(r"ServerArgs\(.*?\bpage_size=(\d+)"), [("sglang_page_size", _int)]),
    (
        re.compile(r"--swa[-_]full[-_]tokens[-_]ratio[=\s]+" + _F),
        [("sglang_swa_ratio", _float)],
    ),
    (
        re.compile(r"ServerArgs\(.*?\bswa_full_tokens_ratio=" + _F),
        [("sglang_swa_ratio", _float)],
    ),
]

# SGLang's settings of the pool split (facts, but not numbers of the memory story).
SGLANG_SETTING_KEYS = ("sglang_page_size", "sglang_swa_ratio")

_BLOCKS = re.compile(r"(?:#\s*)?\b([A-Za-z]+) blocks:\s*(\d+)")
_ENGINE = re.compile(r"Initializing an? (?:(V[01]) )?LLM engine(?: \(v?([^)\s]+)\))?")
_WITH_CONFIG = re.compile(r"with config:\s*(.*)$")
_NON_DEFAULT = re.compile(r"non-default args:\s*(\{.*)$")
_NAMESPACE = re.compile(r"\bargs:\s*Namespace\((.*)$")
_FLAGS = {
    "Memory profiling results": "profiling_header",
    "Memory profiling takes": "profiling_header",
    "No available memory for the cache blocks": "error_no_memory",
    "Padding mamba page size": "hybrid_mamba_padding",
    "Hybrid KV cache manager is disabled": "hybrid_manager_disabled",
    "CUDA graph memory profiling is enabled": "cuda_graph_profiling",
    "server_args=ServerArgs(": "sglang_banner",
}

# Text that starts a known line; seen without a full match, the line was cut short.
TRUNCATION_MARKERS = (
    "blocks:",
    "GPU KV cache size",
    "Maximum concurrency for",
    "Available KV cache memory",
    "Model loading took",
    "Loading model weights took",
    "the rest of the memory reserved",
    "the current vLLM instance can use total_gpu_memory",
    "max seq len (",
    "Memory after warmup",
    "Extended KV cache to",
    "KV Cache is allocated",
    "sliding window memory pool",
    "Sliding window memory pool",
    "SWAKVPool mem usage",
)

# Multi-part lines: seen with their start but without their end, they were cut short.
_COMPLETE_WITH = (
    ("Memory profiling results: total_gpu_memory=", "gpu_memory_utilization="),
    ("; non_torch_memory takes", "reserved for KV Cache is"),
    (", # CPU", "CPU blocks:"),
)


def _setting(name: str, raw: str) -> tuple[str, Value] | None:
    key = _ALIASES.get(name, name)
    if key not in SETTING_KEYS:
        return None
    text = raw.strip().strip("'\"")
    if text in ("None", "null", ""):
        return None
    if key in ("model", "quantization", "kv_cache_dtype"):
        return key, text
    if key == "dtype":
        return key, text.removeprefix("torch.")
    if key in ("enforce_eager", "enable_prefix_caching"):
        if text not in ("True", "False", "true", "false"):
            return None
        return key, text.lower() == "true"
    try:
        number = float(text)
    except ValueError:
        return None
    if not abs(number) <= _MAX_INT:
        return None
    if key in ("gpu_memory_utilization", "swap_space", "cpu_offload_gb"):
        return key, number
    return (key, int(number)) if number.is_integer() else None


def _key_values(body: str) -> list[tuple[str, str]]:
    pairs = []
    for piece in split_top_level(body):
        name, sep, value = piece.partition("=")
        if sep and name.strip().isidentifier():
            pairs.append((name.strip(), value))
    return pairs


def _dict_items(body: str) -> list[tuple[str, str]]:
    try:
        parsed = ast.literal_eval(body[: body.rfind("}") + 1])
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
        parsed = None
    if isinstance(parsed, dict):
        return [(str(k), repr(v) if isinstance(v, str) else str(v)) for k, v in parsed.items()]
    # Objects such as KVTransferConfig(...) defeat literal_eval: fall back to pairs.
    pairs = []
    for piece in split_top_level(body.strip("{} ")):
        name, sep, value = piece.partition(":")
        if sep:
            pairs.append((name.strip().strip("'\""), value))
    return pairs


def _settings_facts(line: CleanLine) -> list[tuple[str, Value, str]]:
    text = line.text
    found: list[tuple[str, Value, str]] = []
    engine = _ENGINE.search(text)
    if engine is not None:
        kind = engine.group(1) or "V0"  # "an LLM engine" predates V1 (<= v0.7)
        found.append(("engine", kind, kind))
        if engine.group(2):
            found.append(("vllm_version", engine.group(2), engine.group(2)))
    pairs: list[tuple[str, str]] = []
    for regex, splitter in (
        (_WITH_CONFIG, _key_values),
        (_NAMESPACE, _key_values),
        (_NON_DEFAULT, _dict_items),
    ):
        match = regex.search(text)
        if match is not None:
            pairs.extend(splitter(match.group(1)))
    for name, raw in pairs:
        setting = _setting(name, raw)
        if setting is not None:
            found.append((setting[0], setting[1], raw.strip()))
    return found


def extract_facts(line: CleanLine) -> tuple[list[Fact], bool]:
    """Facts on one cleaned line, and whether the line looks cut short."""
    facts: list[Fact] = []

    def add(key: str, value: Value, literal: str) -> None:
        facts.append(Fact(key, value, line.line_no, line.source, line.rank, literal))

    text = line.text
    for key, value, literal in _settings_facts(line):
        add(key, value, literal)
    matched = False
    for regex, groups in _PATTERNS:
        match = regex.search(text)
        if match is None:
            continue
        matched = True
        for index, (name, conv) in enumerate(groups, start=1):
            group: str | None = match.group(index)
            if name is not None and group is not None:
                try:
                    add(name, conv(group), group)
                except (ValueError, OverflowError):
                    continue
    for device, count in _BLOCKS.findall(text):
        matched = True
        kind = "num_cpu_blocks" if device.lower() == "cpu" else "num_gpu_blocks"
        try:
            add(kind, _int(count), count)
        except ValueError:
            continue
        if kind == "num_gpu_blocks":
            add("blocks_device", device, device)
            if "CPU blocks" not in text:
                add("blocks_line_without_cpu", True, "")
    for marker, key in _FLAGS.items():
        if marker in text:
            add(key, True, "")
    truncated = not matched and any(m in text for m in TRUNCATION_MARKERS)
    for start, end in _COMPLETE_WITH:
        if start in text and end not in text:
            truncated = True
    return facts, truncated
