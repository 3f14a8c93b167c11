"""Predict vLLM's KV-cache capacity from GPU memory and a model config."""

from capacity_planner._units import GiB, logged_gib_bounds, parse_size
from capacity_planner._version import __version__
from capacity_planner.accounting.kv_config import KVCacheConfig, compute_kv_cache_config
from capacity_planner.accounting.layout import KVCacheGroup
from capacity_planner.accounting.settings import EngineSettings
from capacity_planner.accounting.startup import MemoryProfile, MemoryStep
from capacity_planner.accounting.versions import (
    DEFAULT_VERSION,
    VLLM_FORMULAS,
    VllmFormula,
    resolve_version,
)
from capacity_planner.errors import (
    CapacityPlannerError,
    ConfigFieldError,
    ParallelConfigError,
    SettingError,
    UnknownGPUError,
    UnknownModelError,
    UnsupportedModelError,
)
from capacity_planner.gpus import GPU_CATALOG, GPUSpec, gpu_from_memory, gpu_from_name, resolve_gpu
from capacity_planner.inverse import (
    InverseResult,
    max_model_len_that_fits,
    required_gpus,
    required_tensor_parallel,
    required_utilization,
)
from capacity_planner.model.catalog import catalog_names
from capacity_planner.model.spec import ModelSpec
from capacity_planner.plan import CapacityPlan, plan
from capacity_planner.prefix import PrefixCachingEstimate, prefix_caching_estimate
from capacity_planner.verdict import Change, Verdict, will_it_start

__all__ = [
    "DEFAULT_VERSION",
    "GPU_CATALOG",
    "VLLM_FORMULAS",
    "CapacityPlan",
    "CapacityPlannerError",
    "Change",
    "ConfigFieldError",
    "EngineSettings",
    "GPUSpec",
    "GiB",
    "InverseResult",
    "KVCacheConfig",
    "KVCacheGroup",
    "MemoryProfile",
    "MemoryStep",
    "ModelSpec",
    "ParallelConfigError",
    "PrefixCachingEstimate",
    "SettingError",
    "UnknownGPUError",
    "UnknownModelError",
    "UnsupportedModelError",
    "Verdict",
    "VllmFormula",
    "__version__",
    "catalog_names",
    "compute_kv_cache_config",
    "gpu_from_memory",
    "gpu_from_name",
    "logged_gib_bounds",
    "max_model_len_that_fits",
    "parse_size",
    "plan",
    "prefix_caching_estimate",
    "required_gpus",
    "required_tensor_parallel",
    "required_utilization",
    "resolve_gpu",
    "resolve_version",
    "will_it_start",
]
