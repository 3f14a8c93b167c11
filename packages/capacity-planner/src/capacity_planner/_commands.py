"""The work behind each `capacity-planner` subcommand: argparse namespace -> report.

Each `cmd_*` takes the parsed arguments, runs the library (`plan`, `prefix_caching_estimate`,
the inverse solvers, the catalogs) and prints the human report or `--json`; it returns
the exit status (0 ok, 1 vLLM would refuse to start / no answer). Bad input raises a
`CapacityPlannerError`, which `cli.main` turns into one line and status 2.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from capacity_planner._units import GiB
from capacity_planner.accounting.settings import EngineSettings
from capacity_planner.accounting.versions import get_formula
from capacity_planner.errors import SettingError
from capacity_planner.gpus import GPU_CATALOG, GPUSpec, gpu_from_name, resolve_gpu
from capacity_planner.inverse import (
    max_model_len_that_fits,
    required_gpus,
    required_tensor_parallel,
    required_utilization,
)
from capacity_planner.model.catalog import CATALOG
from capacity_planner.model.spec import ModelSpec
from capacity_planner.plan import kv_config_dict, plan
from capacity_planner.prefix import prefix_caching_estimate
from capacity_planner.report import format_inverse, format_plan, format_prefix
from capacity_planner.sglang import format_sglang, sglang_plan
from capacity_planner.verdict import will_it_start

__all__ = [
    "cmd_gpus",
    "cmd_inverse",
    "cmd_models",
    "cmd_plan",
    "cmd_prefix",
    "cmd_sglang",
    "load_model",
]


def load_model(text: str) -> ModelSpec:
    """A config.json path / directory, or a catalog name."""
    path = Path(text)
    if path.exists():
        return ModelSpec.from_config_file(path)
    if text.endswith(".json"):
        return ModelSpec.from_config_file(path)  # raises a clear "no config.json" error
    return ModelSpec.from_name(text)


def _model_of(args: argparse.Namespace) -> ModelSpec:
    text = args.model_flag or args.model
    if not text:
        raise SettingError("a model is required: a catalog name or a path to config.json")
    return load_model(text)


def _gpu_of(args: argparse.Namespace) -> GPUSpec:
    if args.gpu:
        return resolve_gpu(args.gpu)
    if args.kv_cache_memory is not None:
        return gpu_from_name("H100")  # only used for defaults when profiling is skipped
    raise SettingError("--gpu is required (a catalog name such as H100, or a size such as 48GiB)")


def _speculative(args: argparse.Namespace) -> tuple[str | None, int | None]:
    spec = args.speculative_config
    if spec is None:
        return None, None
    method = spec.get("method")
    if method is None and spec.get("model"):
        method = "draft_model"
    n = spec.get("num_speculative_tokens")
    if method is None or not isinstance(method, str):
        raise SettingError('--speculative-config needs a "method" (eagle3, eagle, mtp, ngram)')
    return method, n


def _settings_of(args: argparse.Namespace) -> EngineSettings:
    if args.swap_space < 0:
        raise SettingError(f"--swap-space must be >= 0 GiB, got {args.swap_space}")
    method, num_spec = _speculative(args)
    return EngineSettings(
        gpu_memory_utilization=args.gpu_memory_utilization,
        max_model_len=args.max_model_len,
        block_size=args.block_size,
        kv_cache_dtype=args.kv_cache_dtype,
        dtype=args.dtype,
        tensor_parallel_size=args.tensor_parallel_size,
        pipeline_parallel_size=args.pipeline_parallel_size,
        max_num_batched_tokens=args.max_num_batched_tokens,
        max_num_seqs=args.max_num_seqs,
        kv_cache_memory_bytes=args.kv_cache_memory,
        quantization=args.quantization,
        enforce_eager=args.enforce_eager,
        enable_expert_parallel=args.enable_expert_parallel,
        vllm_version=args.vllm_version,
        hybrid_kv_cache_manager=not args.disable_hybrid_kv_cache_manager,
        mamba_cache_mode=args.mamba_cache_mode,
        swap_space_bytes=int(args.swap_space * GiB),
        weights_bytes=args.weights_memory,
        activation_bytes=args.activation_memory,
        non_torch_bytes=args.non_torch_memory,
        cuda_graph_bytes=args.cuda_graph_memory,
        draft_weights_bytes=args.draft_weights_memory,
        speculative_method=method,
        num_speculative_tokens=num_spec,
        sampler=args.sampler,
    )


def _emit(args: argparse.Namespace, payload: dict[str, Any], text: str) -> None:
    print(json.dumps(payload, indent=2) if args.json else text)


def cmd_plan(args: argparse.Namespace) -> int:
    if args.engine == "sglang":
        return cmd_sglang(args)
    p = plan(_model_of(args), _gpu_of(args), _settings_of(args))
    verdict = will_it_start(p)
    payload = p.to_dict()
    payload["verdict"] = {
        "starts": verdict.starts,
        "stage": verdict.stage,
        "reason": verdict.reason,
        "cold_start": verdict.cold_start,
        "changes": [
            {"flag": c.flag, "value": c.value, "effect": c.effect} for c in verdict.changes
        ],
    }
    _emit(args, payload, format_plan(p, verdict))
    return 0 if verdict.starts else 1


def cmd_sglang(args: argparse.Namespace) -> int:
    """`--engine sglang`: SGLang's max_total_num_tokens for the same model and GPU."""
    s = _settings_of(args)
    est = sglang_plan(
        _model_of(args),
        _gpu_of(args),
        tensor_parallel_size=s.tensor_parallel_size,
        mem_fraction_static=args.mem_fraction_static,
        kv_cache_dtype=s.kv_cache_dtype,
        page_size=args.block_size or 1,
        context_length=s.max_model_len,
        weights_bytes=s.weights_bytes,
        swa_full_tokens_ratio=args.swa_full_tokens_ratio,
        disable_hybrid_swa_memory=args.disable_hybrid_swa_memory,
    )
    _emit(args, est.to_dict(), format_sglang(est))
    return 0 if est.starts else 1


def cmd_prefix(args: argparse.Namespace) -> int:
    bytes_per_block = pool = None
    name = None
    if args.model or args.model_flag:
        p = plan(_model_of(args), _gpu_of(args), _settings_of(args))
        bytes_per_block, pool, name = p.kv.bytes_per_block, p.kv.num_blocks, p.model.name
        block_size = p.kv.block_size
    else:
        block_size = args.block_size or get_formula(args.vllm_version).default_block_size
    est = prefix_caching_estimate(
        args.prefix_tokens,
        args.users,
        args.suffix_tokens,
        block_size,
        bytes_per_block=bytes_per_block,
        pool_blocks=pool,
    )
    payload = {
        "prefix_tokens": est.prefix_tokens,
        "users": est.users,
        "suffix_tokens": est.suffix_tokens,
        "block_size": est.block_size,
        "shared_blocks": est.shared_blocks,
        "blocks_without": est.blocks_without,
        "blocks_with": est.blocks_with,
        "multiplier": round(est.multiplier, 4),
        "bytes_without": est.bytes_without,
        "bytes_with": est.bytes_with,
        "pool_blocks": est.pool_blocks,
        "users_that_fit_without": est.users_that_fit_without,
        "users_that_fit_with": est.users_that_fit_with,
    }
    _emit(args, payload, format_prefix(est, name))
    return 0


def cmd_inverse(args: argparse.Namespace) -> int:
    model, gpu, settings = _model_of(args), _gpu_of(args), _settings_of(args)
    if args.question == "max-model-len":
        result = max_model_len_that_fits(
            model, gpu, settings, target_concurrency=args.target_concurrency
        )
    else:
        if args.target_concurrency is None or args.context_len is None:
            raise SettingError(
                f"inverse {args.question} needs --target-concurrency and --context-len"
            )
        solver: Callable[..., Any] = {
            "utilization": required_utilization,
            "tp": required_tensor_parallel,
            "gpus": required_gpus,
        }[args.question]
        result = solver(model, gpu, args.target_concurrency, args.context_len, settings)
    payload = {
        "question": result.question,
        "answer": result.answer,
        "feasible": result.feasible,
        "explanation": result.explanation,
        "kv_cache": kv_config_dict(result.plan.kv) if result.plan else None,
    }
    _emit(args, payload, format_inverse(result))
    return 0 if result.feasible else 1


def cmd_models(args: argparse.Namespace) -> int:
    rows: list[dict[str, Any]] = []
    for name in CATALOG:
        spec = ModelSpec.from_name(name)
        kinds = {k: spec.count(k) for k in ("full", "sliding", "mla", "mamba") if spec.count(k)}
        rows.append(
            {
                "name": name,
                "layers": spec.num_hidden_layers,
                "kinds": kinds,
                "params_b": round(spec.param_count() / 1e9, 2),
                "source": spec.source,
            }
        )
    text = "\n".join(
        f"{r['name']:<44} {r['layers']:>3} layers  {r['params_b']:>8.2f}B  "
        + ", ".join(f"{v} {k}" for k, v in r["kinds"].items())
        for r in rows
    )
    _emit(args, {"models": rows}, text)
    return 0


def cmd_gpus(args: argparse.Namespace) -> int:
    rows = [
        {
            "name": g.name,
            "memory_gib": round(g.memory_gib, 2),
            "vendor": g.vendor,
            "logged": g.logged,
            "source": g.source,
            "aliases": list(g.aliases),
        }
        for g in GPU_CATALOG
    ]
    text = "\n".join(f"{r['name']:<12} {r['memory_gib']:>8.2f} GiB  {r['source']}" for r in rows)
    _emit(args, {"gpus": rows}, text)
    return 0
