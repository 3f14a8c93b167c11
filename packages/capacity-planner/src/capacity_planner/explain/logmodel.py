"""The model side of explain-log: what one KV block costs, through the planner's API.

A log never prints the page size; it prints memory and block counts. To check one
against the other explain-log asks the planner (`capacity_planner.accounting.kv_config`):
`compute_kv_cache_config(model, available_bytes, ...)` carves a byte budget the way the
named vLLM version does (page sizes from `block_allocator.kv_cache_spec`, hybrid page
unification and grouping, tensor-parallel head sharding, MLA's unsharded latent) and
returns the block count, token count, per-request blocks and start-up check. Models
come from `ModelSpec.from_config_file` (a Hugging Face config.json) or
`ModelSpec.from_name` (the planner's catalog).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from capacity_planner.accounting.kv_config import KVCacheConfig, compute_kv_cache_config
from capacity_planner.errors import CapacityPlannerError
from capacity_planner.model.spec import ModelSpec

__all__ = ["Carving", "LogModel", "resolve_model", "try_resolve_log_model"]


@dataclass(frozen=True, slots=True)
class Carving:
    """The settings a log's run was carved with, in the planner's terms."""

    block_size: int
    tensor_parallel_size: int
    pipeline_parallel_size: int
    kv_cache_dtype: str
    dtype: str  # the model dtype the log names, or "auto"
    max_model_len: int | None
    max_num_batched_tokens: int | None
    vllm_version: str  # a key of capacity_planner.VLLM_FORMULAS


@dataclass(frozen=True)
class LogModel:
    """A model known to the planner, as explain-log uses it."""

    spec: ModelSpec

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def source(self) -> str:
        return self.spec.source or "capacity-planner catalog"

    @property
    def caveat(self) -> str | None:
        kinds = set(self.spec.layer_kinds)
        if kinds <= {"full"} or kinds == {"mla"}:
            return None
        return (
            f"{self.name} mixes {', '.join(sorted(kinds))} layers: vLLM groups them, so the "
            "per-request cost is not max_model_len tokens"
        )

    def carve(self, available_bytes: int, how: Carving) -> KVCacheConfig:
        """The planner's carving of `available_bytes` (raises CapacityPlannerError)."""
        return compute_kv_cache_config(
            self.spec,
            max(0, available_bytes),
            block_size=how.block_size,
            kv_cache_dtype=how.kv_cache_dtype,
            dtype=how.dtype,
            tensor_parallel_size=how.tensor_parallel_size,
            pipeline_parallel_size=how.pipeline_parallel_size,
            max_model_len=how.max_model_len,
            max_num_batched_tokens=how.max_num_batched_tokens,
            vllm_version=how.vllm_version,
        )

    def try_carve(self, available_bytes: int, how: Carving) -> KVCacheConfig | str:
        """`carve`, or the planner's one-line error message."""
        try:
            return self.carve(available_bytes, how)
        except (CapacityPlannerError, ValueError, TypeError, ArithmeticError) as exc:
            # The settings came from a log; a combination the planner rejects is reported.
            return str(exc) or type(exc).__name__


def page_formula(config: KVCacheConfig) -> str:
    """One line per KV cache group: kind, layers and page size; then bytes per block."""
    groups = "; ".join(
        f"{group.kind} x{len(group.layer_indices)} layers, page {group.page_size_bytes:,} B "
        f"(block {group.block_size})"
        for group in config.groups
    )
    return f"{groups}; one block id = page x group_size {config.group_size}"


def resolve_model(name_or_path: str) -> LogModel:
    """A model from a config.json path (or its folder) or a planner catalog name.

    Raises the planner's `UnknownModelError` (with close matches) or `ConfigFieldError`.
    """
    path = Path(name_or_path)
    if path.is_dir() or path.is_file() or path.suffix == ".json":
        return LogModel(ModelSpec.from_config_file(path))
    return LogModel(ModelSpec.from_name(name_or_path))


def _candidate_names(logged: str) -> list[str]:
    # Hugging Face cache paths look like .../models--org--name/snapshots/<sha>.
    names = [logged]
    for part in reversed(logged.replace("\\", "/").split("/")):
        if part.startswith("models--"):
            names.append(part.removeprefix("models--").replace("--", "/", 1))
            break
    names.append(logged.rstrip("/").rsplit("/", 1)[-1])
    return list(dict.fromkeys(n for n in names if n))


def try_resolve_log_model(logged: str) -> LogModel | None:
    """The model a log names, when the planner's catalog knows it; None otherwise."""
    for name in _candidate_names(logged):
        try:
            return LogModel(ModelSpec.from_name(name))
        except (CapacityPlannerError, ValueError):
            continue
    return None
