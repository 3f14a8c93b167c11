"""Reproductions on the real traces: the block-size trade-off and Mooncake prefix sharing."""

from __future__ import annotations

import itertools
from typing import Any

from ..config import SimConfig
from ..engine.paged import PagedEngine
from ..engine.simulator import simulate
from ..report.experiment import ExperimentReport
from ..report.experiment import row as _row
from ..report.metrics import SimResult
from ..workload.catalog import resolve_trace_dir
from ..workload.prefix import prefix_stats
from ..workload.requests import Workload
from ..workload.sessions import link_turns
from ..workload.traces import TRACE_FILES, load_trace
from .synthetic import FIG_CONFIG, sharegpt_workload

# Per-trace memory scenarios for the block-size sweep and the matrix: a budget that keeps
# the paged policy busy but not starved, and a max_model_len that admits the trace's
# longest request (azure_conv has one 14,089-token request).
TRACE_SCENARIOS: dict[str, dict[str, int]] = {
    "azure_code": {"capacity_tokens": 131_072, "max_model_len": 8_192},
    "azure_conv": {"capacity_tokens": 131_072, "max_model_len": 16_384},
    "mooncake_conversation": {"capacity_tokens": 1_048_576, "max_model_len": 131_072},
    "mooncake_synthetic": {"capacity_tokens": 1_048_576, "max_model_len": 262_144},
}
BLOCK_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
_PREFIX_CAPS = (262_144, 1_048_576, 4_194_304, 16_777_216, 67_108_864)


# -- 5. block size -------------------------------------------------------------------------
def trace_config(trace: str, **changes: Any) -> SimConfig:
    """The memory scenario of :data:`TRACE_SCENARIOS` for ``trace`` as a SimConfig."""
    return SimConfig(**{**TRACE_SCENARIOS[trace], **changes})


def _available_traces(trace_dir: str | None) -> list[str]:
    base = resolve_trace_dir(trace_dir)
    return [n for n, f in TRACE_FILES.items() if (base / f).is_file()]


def _missing(names: list[str] | tuple[str, ...], trace_dir: str | None) -> list[str]:
    """One line per absent trace, with the command that fetches it."""
    have = set(_available_traces(trace_dir))
    base = resolve_trace_dir(trace_dir)
    return [
        f"trace {n} is not in {base}: fetch it with 'frag-sim traces fetch {n}'"
        for n in names
        if n not in have
    ]


def _block_size(quick: bool = False, trace_dir: str | None = None, **_: Any) -> ExperimentReport:
    sizes = (4, 16, 64, 256) if quick else BLOCK_SIZES
    head = 300 if quick else None
    rows: list[dict[str, Any]] = []
    runs: dict[str, SimResult] = {}
    checks: list[tuple[str, bool]] = []
    workloads: dict[str, tuple[Workload, SimConfig]] = {
        "sharegpt-like": (sharegpt_workload(500 if quick else 3000), FIG_CONFIG)
    }
    for tr in _available_traces(trace_dir):
        wl = load_trace(tr, trace_dir)
        workloads[tr] = (wl.head(head) if head else wl, trace_config(tr))
    for name, (wl, cfg) in workloads.items():
        usage = []
        for bs in sizes:
            # tiny blocks on the long Mooncake prompts mean ~10^8 allocator calls: cap them
            w = wl.head(min(len(wl), 2000)) if bs < 16 and wl.prompt_len.mean() > 4000 else wl
            r = simulate(w, cfg.replace(block_size=bs, record_timeseries=False))
            runs[f"{name}/{bs}"] = r
            usage.append(r.token_usage)
            rows.append(
                _row(r, workload=w.name, block_size=bs, internal=round(r.breakdown.internal, 4))
            )
        checks.append(
            (
                f"{name}: live/allocated falls as blocks grow",
                all(a >= b - 1e-9 for a, b in itertools.pairwise(usage)),
            )
        )
    notes = [
        "Mooncake rows below block 16 replay the first 2,000 requests (allocator cost "
        "grows as tokens / block_size)"
    ]
    return ExperimentReport(
        "block_size",
        "block size 1..512 on every trace",
        rows,
        checks,
        notes,
        runs,
        missing=_missing(list(TRACE_FILES), trace_dir),
    )


# -- 6. Mooncake prefix sharing -------------------------------------------------------------
def _prefix(quick: bool = False, trace_dir: str | None = None, **_: Any) -> ExperimentReport:
    rows: list[dict[str, Any]] = []
    checks: list[tuple[str, bool]] = []
    runs: dict[str, SimResult] = {}
    for tr in ("mooncake_conversation", "mooncake_synthetic"):
        if tr not in _available_traces(trace_dir):
            continue
        wl = load_trace(tr, trace_dir)
        if quick:
            wl = wl.head(400)
        st = prefix_stats(wl)  # the infinite-cache bound over the same requests
        rows.append(
            {
                "workload": wl.name,
                "config": "trace hash_ids (infinite cache)",
                "capacity": "inf",
                "hit_rate": round(st.repeated_token_share, 4),
                "repeated_blocks": round(st.repeated_share, 4),
            }
        )
        rates = []
        # every capacity holds the longest request, so all runs serve the same requests
        caps = (262_144, 1_048_576, 4_194_304) if quick else _PREFIX_CAPS
        for cap in caps:
            cfg = trace_config(
                tr,
                capacity_tokens=cap,
                block_size=512,
                enable_prefix_caching=True,
                record_timeseries=False,
            )
            r = simulate(wl, cfg)
            runs[f"{tr}/{cap}"] = r
            rates.append(r.prefix_hit_rate)
            rows.append(
                {
                    "workload": wl.name,
                    "config": cfg.label,
                    "capacity": cap,
                    "hit_rate": round(r.prefix_hit_rate, 4),
                    "repeated_blocks": "",
                    "rejected": len(r.rejected),
                    "preempt": r.preemptions,
                    "saved": round(r.sharing_saved, 3),
                }
            )
        checks.append(
            (
                f"{tr}: hit rate grows with cache size",
                all(a <= b + 0.005 for a, b in itertools.pairwise(rates)),
            )
        )
        checks.append(
            (
                f"{tr}: hit rate stays below the infinite-cache bound "
                f"{st.repeated_token_share:.3f} and nears it with the largest cache",
                max(rates) <= st.repeated_token_share + 1e-9
                and rates[-1] >= 0.8 * st.repeated_token_share,
            )
        )
    return ExperimentReport(
        "prefix",
        "Mooncake: repeated prefix blocks, hit rate vs cache size",
        rows,
        checks,
        ["block 512 = the traces' hash block"],
        runs,
        missing=_missing(("mooncake_conversation", "mooncake_synthetic"), trace_dir),
    )


# -- 7. prefix caching with a CPU offload tier ----------------------------------------------
_OFFLOAD_GPU = (262_144, 1_048_576)
_OFFLOAD_CPU = (0, 4_194_304, 16_777_216, 67_108_864)


def _offload(quick: bool = False, trace_dir: str | None = None, **_: Any) -> ExperimentReport:
    """Hit rate against GPU cache size and CPU tier size on the Mooncake traces."""
    rows: list[dict[str, Any]] = []
    checks: list[tuple[str, bool]] = []
    runs: dict[str, SimResult] = {}
    head = 300 if quick else 3000
    cpus = (0, 4_194_304, 16_777_216) if quick else _OFFLOAD_CPU
    sessions_seen: list[str] = []
    for tr in ("mooncake_conversation", "mooncake_synthetic"):
        if tr not in _available_traces(trace_dir):
            continue
        wl = load_trace(tr, trace_dir).head(head)
        bound = prefix_stats(wl).repeated_token_share
        ses = link_turns(wl)
        sessions_seen.append(
            f"{tr}: {ses.follow_ups:,} of {len(wl):,} requests continue an earlier turn "
            f"({ses.sessions:,} conversations, up to {max(ses.turn)} turns)"
        )
        for gpu in _OFFLOAD_GPU:
            rates = []
            for cpu in cpus:
                cfg = trace_config(
                    tr,
                    capacity_tokens=gpu,
                    block_size=512,
                    enable_prefix_caching=True,
                    cpu_cache_tokens=cpu,
                    record_timeseries=False,
                )
                eng = PagedEngine(wl, cfg)
                hits: dict[int, int] = {}
                eng.hits_by_request = hits
                r = eng.run()
                runs[f"{tr}/{gpu}/{cpu}"] = r
                follow = _split(hits, wl, ses.turn)
                rates.append(r.prefix_hit_rate)
                rows.append(
                    {
                        "workload": wl.name,
                        "gpu_tokens": gpu,
                        "cpu_tokens": cpu,
                        "hit_rate": round(r.prefix_hit_rate, 4),
                        "from_gpu": round(r.prefix_hit_rate - r.cpu_hit_rate, 4),
                        "from_cpu": round(r.cpu_hit_rate, 4),
                        "bound": round(bound, 4),
                        "first_turns": round(follow[0], 4),
                        "follow_ups": round(follow[1], 4),
                        "preempt": r.preemptions,
                    }
                )
            checks.append(
                (
                    f"{tr}, GPU {gpu:,} slots: hit rate grows with the CPU tier and stays "
                    f"below the infinite-cache bound {bound:.3f}",
                    all(a <= b + 0.005 for a, b in itertools.pairwise(rates))
                    and max(rates) <= bound + 1e-9,
                )
            )
    notes = [
        "first_turns / follow_ups: hit rate of requests that start a conversation / "
        "continue an earlier turn (linked through hash_ids, frag_sim.workload.sessions); "
        + "; ".join(sessions_seen),
        f"first {head:,} requests of each trace; block 512 = the traces' hash block; a "
        "block reaches the CPU tier when the GPU evicts it and is loaded back on a hit "
        "(block_allocator.offload, after vLLM 0.34's kv_offload LRU tier)",
    ]
    return ExperimentReport(
        "offload",
        "Mooncake: prefix hit rate vs GPU cache and CPU tier size",
        rows,
        checks,
        notes,
        runs,
        missing=_missing(("mooncake_conversation", "mooncake_synthetic"), trace_dir),
    )


def _split(hits: dict[int, int], wl: Workload, turn: tuple[int, ...]) -> tuple[float, float]:
    """Hit rate of first turns and of follow-up turns (hit tokens / prompt tokens)."""
    h, q = [0, 0], [0, 0]
    prompts = wl.prompt_len.tolist()
    for i, nhit in hits.items():
        k = 1 if turn[i] > 1 else 0
        h[k] += nhit
        q[k] += prompts[i]
    return (h[0] / q[0] if q[0] else 0.0, h[1] / q[1] if q[1] else 0.0)
