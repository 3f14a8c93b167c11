"""Command line: ``frag-sim`` / ``python -m frag_sim``: run, sweep, plot, experiment, traces.

A config file (TOML or JSON) holds ``[workload]`` (a :class:`WorkloadSpec`), ``[sim]`` (a
:class:`SimConfig`) and optionally ``[sweep]`` (``policies``, ``block_sizes``,
``capacities``, ``traces``, ``seeds``); flags override it. Without a workload, ``run`` and
``sweep`` replay the headline workload (:data:`HEADLINE`). Results go to stdout as a
table, or to ``--json`` / ``--csv`` files (written atomically; ``-`` is stdout). Progress
goes to stderr: a tqdm bar on a terminal, one line per finished run otherwise. Every
failure is one ``frag-sim: error:`` line and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from block_allocator import LATEST_VLLM, VLLM_DEFAULTS, defaults_for

from .. import __version__
from ..config import POLICIES, SimConfig
from ..engine.simulator import simulate
from ..errors import FragSimError
from ..experiments import EXPERIMENTS, TRACE_SCENARIOS, run_experiment
from ..experiments.sweep import WorkloadSpec, run_sweep
from ..report.io import write_csv, write_json
from ..workload.catalog import ENV_VAR
from ..workload.requests import LENGTH_MIXES, Workload
from ..workload.stream import Chunk, RequestStream
from ..workload.traces import TRACE_FILES
from .plot import cmd_plot
from .traces import cmd_traces
from .util import (
    Formatter,
    Progress,
    csv_ints,
    load_config,
    print_table,
    run_progress,
    table_stream,
    write_outputs,
)

# The bare ``frag-sim run``: the headline workload of the README ("the 'PagedAttention
# from scratch in 300 lines' capstone" lengths: prompts U[200, 4000], outputs U[50, 500],
# Poisson 8 req/s) on 32 x 4500 slots, where every request fits.
HEADLINE: dict[str, Any] = {
    "mix": "capstone",
    "num_requests": 1000,
    "rate": 8.0,
    "seed": 3,
    "capacity_tokens": 144_000,
    "max_model_len": 4500,
    "allocator": "first_fit",
    "policies": "max,paged",
}


def _add_common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("workload (default: the headline synthetic workload)")
    g.add_argument("--config", help="TOML or JSON file with [workload], [sim], [sweep]")
    g.add_argument("--trace", help=f"trace name ({', '.join(TRACE_FILES)}) or file path")
    g.add_argument(
        "--trace-dir", help=f"folder holding the traces (default: ${ENV_VAR}, else user data)"
    )
    g.add_argument("--csv-trace", help="generic CSV trace (needs --columns)")
    g.add_argument("--columns", help="arrival=COL,prompt_len=COL,output_len=COL for --csv-trace")
    g.add_argument("--arrival-unit", help="s, ms, us or datetime (generic CSV; default: s)")
    g.add_argument(
        "--mix", help=f"synthetic length mix ({', '.join(LENGTH_MIXES)}; default: capstone)"
    )
    g.add_argument("--num-requests", type=int, help="synthetic: number of requests (default: 1000)")
    g.add_argument(
        "--rate", type=float, help="synthetic: requests per second, inf allowed (default: 8)"
    )
    g.add_argument(
        "--burstiness", type=float, help="synthetic: gamma shape, 1 = Poisson (default: 1)"
    )
    g.add_argument("--seed", type=int, help="synthetic: RNG seed (default: 3)")
    g.add_argument("--head", type=int, help="replay only the first N requests (default: all)")
    s = p.add_argument_group("memory and scheduler")
    s.add_argument(
        "--policies",
        help=f"comma list of {', '.join(POLICIES)} (default: max,paged; a trace or sweep: all)",
    )
    s.add_argument(
        "--capacity-tokens",
        type=int,
        help="KV memory in token slots (default: 144000; a trace: its scenario)",
    )
    s.add_argument(
        "--max-model-len",
        type=int,
        help="longest request allowed in tokens (default: 4500; a trace: its scenario)",
    )
    s.add_argument(
        "--vllm-version",
        default=LATEST_VLLM,
        choices=sorted(VLLM_DEFAULTS),
        help="the vLLM release whose default block size applies when --block-size is not "
        "given (" + ", ".join(f"{v}: {d.block_size}" for v, d in VLLM_DEFAULTS.items()) + ")",
    )
    s.add_argument(
        "--block-size", type=int, help="paged block size in tokens (default: from --vllm-version)"
    )
    s.add_argument(
        "--allocator",
        choices=["buddy", "first_fit"],
        help="contiguous allocator (default: first_fit; a trace or config file: buddy)",
    )
    s.add_argument(
        "--prefix-caching", action="store_true", default=None, help="paged: enable prefix caching"
    )
    s.add_argument(
        "--cpu-cache-tokens",
        type=int,
        help="paged + prefix caching: a CPU offload tier of this many token slots "
        "(default: 0, none)",
    )
    s.add_argument(
        "--preemption",
        choices=["recompute", "swap"],
        help="paged preemption mode (default: recompute)",
    )
    s.add_argument(
        "--swap-time-per-block", type=float, help="seconds per swapped block (default: 0)"
    )
    s.add_argument("--step-time", type=float, help="seconds per decode step (default: 0.05)")
    s.add_argument(
        "--max-num-seqs", type=int, help="cap on requests running at once (default: none)"
    )
    s.add_argument(
        "--n", type=int, help="sequences per request: samples or beams, fork + CoW (default: 1)"
    )
    s.add_argument(
        "--beam-search",
        action="store_true",
        default=None,
        help="the --n sequences are beams (uniform parent resampling every step)",
    )
    s.add_argument("--beam-seed", type=int, help="seed of the beam selection model (default: 0)")
    o = p.add_argument_group("output")
    o.add_argument("--json", dest="json_out", help="write results as JSON ('-': stdout)")
    o.add_argument("--csv", dest="csv_out", help="write results as CSV ('-': stdout)")


def _synthetic(spec: WorkloadSpec) -> bool:
    return spec.kind == "synthetic"


def _workload_spec(a: argparse.Namespace, cfg: dict[str, Any]) -> WorkloadSpec:
    d: dict[str, Any] = dict(cfg.get("workload", {}))
    if not a.config:  # no file: the headline workload fills in what the flags do not give
        d = {k: HEADLINE[k] for k in ("mix", "num_requests", "rate", "seed")}
    if a.trace:
        d = {"kind": "trace", "trace": a.trace}
    elif a.csv_trace:
        d = {"kind": "csv", "path": a.csv_trace}
    if a.columns:
        try:
            cols = dict(kv.split("=", 1) for kv in a.columns.split(","))
        except ValueError:
            raise FragSimError(f"--columns must be key=COL pairs, got {a.columns!r}") from None
        d["columns"] = cols
    for flag, key in (
        ("trace_dir", "trace_dir"),
        ("arrival_unit", "arrival_unit"),
        ("mix", "mix"),
        ("num_requests", "num_requests"),
        ("rate", "rate"),
        ("burstiness", "burstiness"),
        ("seed", "seed"),
        ("head", "head"),
    ):
        v = getattr(a, flag)
        if v is not None:
            d[key] = v
    return WorkloadSpec.from_dict(d)


def _sim_config(a: argparse.Namespace, cfg: dict[str, Any], spec: WorkloadSpec) -> SimConfig:
    d: dict[str, Any] = {"block_size": defaults_for(a.vllm_version).block_size}
    if spec.kind == "trace" and spec.trace in TRACE_SCENARIOS:
        d.update(TRACE_SCENARIOS[spec.trace])
    elif _synthetic(spec) and not a.config:
        d.update({k: HEADLINE[k] for k in ("capacity_tokens", "max_model_len", "allocator")})
    d.update(cfg.get("sim", {}))
    for flag, key in (
        ("capacity_tokens", "capacity_tokens"),
        ("max_model_len", "max_model_len"),
        ("block_size", "block_size"),
        ("allocator", "allocator"),
        ("prefix_caching", "enable_prefix_caching"),
        ("cpu_cache_tokens", "cpu_cache_tokens"),
        ("preemption", "preemption"),
        ("swap_time_per_block", "swap_time_per_block_s"),
        ("step_time", "step_time_s"),
        ("max_num_seqs", "max_num_seqs"),
        ("n", "n"),
        ("beam_search", "use_beam_search"),
        ("beam_seed", "seed"),
    ):
        v = getattr(a, flag)
        if v is not None:
            d[key] = v
    d.pop("policy", None)
    d["record_timeseries"] = bool(
        getattr(a, "timeseries", None) or getattr(a, "plot", None) or getattr(a, "plot_waste", None)
    )
    return SimConfig.from_dict(d)


def _policies(a: argparse.Namespace, cfg: dict[str, Any], default: str) -> list[str]:
    raw = a.policies or ",".join(cfg.get("sweep", {}).get("policies", default.split(",")))
    pols = [p.strip() for p in raw.split(",") if p.strip()]
    bad = [p for p in pols if p not in POLICIES]
    if bad or not pols:
        raise FragSimError(f"--policies must be a comma list of {POLICIES}, got {raw!r}")
    return pols


def _check_outputs(a: argparse.Namespace) -> None:
    """Fail before any work on an output no run could write (nothing is half-written)."""
    for flag in ("plot", "plot_waste"):
        path = getattr(a, flag)
        if path and Path(path).suffix.lower() not in (".png", ".svg"):
            raise FragSimError(f"--{flag.replace('_', '-')} must end in .png or .svg: {path}")
    if a.timeseries and a.timeseries == "-":
        raise FragSimError("--timeseries needs a file (.csv or .json)")
    for flag in ("json_out", "csv_out", "timeseries", "plot", "plot_waste", "kv_events"):
        path = getattr(a, flag)
        if not path or path == "-":
            continue
        for parent in Path(path).absolute().parents:
            if parent.exists():
                if not parent.is_dir():
                    raise FragSimError(f"cannot write {path}: {parent} is not a folder")
                break


def cmd_run(a: argparse.Namespace) -> int:
    _check_outputs(a)
    cfg = load_config(a.config)
    spec = _workload_spec(a, cfg)
    base = _sim_config(a, cfg, spec)
    headline = _synthetic(spec) and not a.config
    pols = _policies(a, cfg, HEADLINE["policies"] if headline else ",".join(POLICIES))
    if a.tile is not None and spec.kind != "trace":
        raise FragSimError("--tile needs --trace (a trace to repeat in time)")
    if a.kv_events and pols != ["paged"]:
        raise FragSimError("--kv-events needs --policies paged (events are paged blocks)")
    if a.kv_events:
        base = base.replace(enable_prefix_caching=True)
    wl: Workload | RequestStream = spec.build()
    results = {}
    with run_progress(f"run {spec.label}", len(pols)):
        for p in pols:
            c = base.replace(policy=p)
            if a.tile is not None:  # a long streamed run: progress in requests, per chunk
                with Progress(f"{c.label} {spec.label} x{a.tile:,}", a.tile, "req") as bar:
                    results[p] = simulate(_counted(spec.stream(a.tile), bar), c)
            elif a.kv_events:
                from ..report.events import simulate_with_events

                results[p] = simulate_with_events(wl, c, a.kv_events)
            else:
                results[p] = simulate(wl, c)
    rows = [r.summary() for r in results.values()]
    print_table(rows, file=table_stream(a))
    for r in results.values():
        if r.rejected:
            i, why = r.rejected[0]
            print(
                f"{r.config.label}: {len(r.rejected)} rejected (first: request {i}: {why})",
                file=sys.stderr,
            )
    name = results[pols[0]].workload
    if a.plot:
        from ..report.plot import plot_usage_over_time

        plot_usage_over_time(
            {r.config.label: r for r in results.values()},
            a.plot,
            title=f"KV memory over time: {name}",
        )
    if a.plot_waste:
        from ..report.plot import plot_waste_over_time

        plot_waste_over_time(
            {r.config.label: r for r in results.values()},
            a.plot_waste,
            title=f"Where KV memory goes over time: {name}",
        )
    if a.timeseries:
        ts_rows = []
        for p, r in results.items():
            ts = r.timeseries
            if ts is None:
                raise FragSimError("internal: the time series was not recorded")
            ts_rows += [{"policy": p, **row} for row in ts.to_rows()]
        if Path(a.timeseries).suffix.lower() == ".json":
            write_json(a.timeseries, ts_rows)
        else:
            write_csv(a.timeseries, ts_rows)
    write_outputs(a, rows)
    return 0


def _counted(stream: RequestStream, bar: Progress) -> RequestStream:
    """``stream`` whose chunks advance ``bar`` as the engine reads them."""

    def chunks() -> Iterator[Chunk]:
        for ch in stream.chunks():
            bar.advance(len(ch))
            yield ch

    return dataclasses.replace(stream, chunks=chunks)


def cmd_sweep(a: argparse.Namespace) -> int:
    cfg = load_config(a.config)
    sw = dict(cfg.get("sweep", {}))
    traces = a.traces.split(",") if a.traces else list(sw.get("traces", []))
    seeds = csv_ints(a.seeds, "--seeds", low=0) if a.seeds else list(sw.get("seeds", []))
    if traces:
        specs = [
            WorkloadSpec(kind="trace", trace=t, trace_dir=a.trace_dir, head=a.head) for t in traces
        ]
    else:
        one = _workload_spec(a, cfg)
        specs = [one.replace(seed=sd) for sd in seeds] if seeds else [one]
    bss = (
        csv_ints(a.block_sizes, "--block-sizes")
        if a.block_sizes
        else list(sw.get("block_sizes", []))
    )
    caps = (
        csv_ints(a.capacities, "--capacities") if a.capacities else list(sw.get("capacities", []))
    )
    tasks = []
    for spec in specs:
        base = _sim_config(a, cfg, spec)
        for pol in _policies(a, cfg, ",".join(POLICIES)):
            for cap in caps or [base.capacity_tokens]:
                # contiguous policies ignore the block size: one run each
                sizes = bss or [base.block_size]  # default: the --vllm-version block
                for bs in sizes if pol == "paged" else sizes[:1]:
                    tasks.append(
                        (spec, base.replace(policy=pol, block_size=bs, capacity_tokens=cap))
                    )
    t0 = time.perf_counter()
    with Progress("sweep", len(tasks)) as bar:
        rows = run_sweep(
            tasks,
            jobs=a.jobs,
            cluster=a.cluster,
            progress=lambda done, total, row: bar.step(f"{row['workload']} {row['label']}"),
        )
    wall = time.perf_counter() - t0
    print_table(rows, file=table_stream(a))
    where = f"on {a.cluster}" if a.cluster else f"on {a.jobs} process(es)"
    print(f"{len(rows)} runs in {wall:.2f} s {where}", file=sys.stderr)
    write_outputs(a, rows)
    return 0


def cmd_experiment(a: argparse.Namespace) -> int:
    names = list(EXPERIMENTS) if a.name == "all" else [a.name]
    ok = True
    dump = {}
    for n in names:
        with run_progress(f"experiment {n}", None):
            rep = run_experiment(n, quick=a.quick, trace_dir=a.trace_dir)
        print(rep.render())
        print()
        ok &= rep.ok
        dump[n] = {
            "title": rep.title,
            "rows": rep.rows,
            "checks": rep.checks,
            "notes": rep.notes,
            "missing": rep.missing,
        }
    if a.json_out:
        write_json(a.json_out, dump)
    return 0 if ok else 1


def cmd_list(a: argparse.Namespace) -> int:
    print("experiments:")
    for e in EXPERIMENTS.values():
        print(f"  {e.name:12s} {e.title}")
    print("traces:", ", ".join(TRACE_FILES), "(frag-sim traces: sources, licenses, fetch)")
    print("length mixes:", ", ".join(LENGTH_MIXES))
    print("policies:", ", ".join(POLICIES))
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="frag-sim", description=__doc__.splitlines()[0], formatter_class=Formatter
    )
    ap.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser(
        "run",
        help="replay one workload under each policy",
        description="Replay one workload under each policy. Without a workload: the headline "
        "one (" + ", ".join(f"{k}={v}" for k, v in HEADLINE.items()) + ").",
        formatter_class=Formatter,
    )
    _add_common(p)
    p.add_argument("--tile", type=int, help="repeat --trace in time to N requests (streamed)")
    p.add_argument(
        "--timeseries", help="write the per-event time series with its waste split (.csv/.json)"
    )
    p.add_argument("--plot", help="write a usage-over-time plot (.png or .svg)")
    p.add_argument("--plot-waste", help="write the waste split over time (.png or .svg)")
    p.add_argument(
        "--kv-events",
        help="write the paged run's KV-cache events as vLLM-format JSON lines ('-': stdout); "
        "turns prefix caching on",
    )
    p.set_defaults(func=cmd_run)
    p = sub.add_parser(
        "sweep",
        help="traces x policies x block sizes x capacities x seeds",
        formatter_class=Formatter,
    )
    _add_common(p)
    p.add_argument("--traces", help="comma list of traces (one workload per trace)")
    p.add_argument("--block-sizes", help="comma list, e.g. 4,8,16,32,64,128,256,512")
    p.add_argument("--capacities", help="comma list of capacity_tokens values")
    p.add_argument("--seeds", help="comma list of synthetic workload seeds")
    p.add_argument("--jobs", type=int, default=1, help="local worker processes")
    p.add_argument(
        "--cluster",
        help="Dask scheduler address (tcp://host:8786) to run on instead of local processes; "
        "needs frag-sim[dask]",
    )
    p.set_defaults(func=cmd_sweep)
    p = sub.add_parser("plot", help="regenerate the README figures", formatter_class=Formatter)
    p.add_argument(
        "kind",
        choices=["headline", "waste", "waste-over-time", "block-size", "admissions", "all"],
    )
    p.add_argument("--out", help="output file (single kind)")
    p.add_argument("--out-dir", default=".", help="folder for 'all'")
    p.add_argument("--formats", default="png", help="comma list: png,svg")
    p.add_argument("--quick", action="store_true", help="small runs (for tests)")
    p.add_argument("--trace-dir", help=f"trace folder (default: ${ENV_VAR}, else user data)")
    p.set_defaults(func=cmd_plot)
    p = sub.add_parser(
        "experiment", help="run a named reproduction (or 'all')", formatter_class=Formatter
    )
    p.add_argument("name", choices=[*EXPERIMENTS, "all"])
    p.add_argument("--quick", action="store_true", help="small runs (for tests)")
    p.add_argument("--trace-dir", help=f"trace folder (default: ${ENV_VAR}, else user data)")
    p.add_argument("--json", dest="json_out", help="write the reports as JSON ('-': stdout)")
    p.add_argument("--csv", dest="csv_out", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_experiment)
    p = sub.add_parser(
        "traces",
        help="list the public traces (sources, licenses) or fetch them",
        description="List the public traces with their sources and licenses, or download "
        "them into the trace folder with a SHA-256 check.",
        formatter_class=Formatter,
    )
    p.add_argument("action", nargs="?", default="list", choices=["list", "fetch"])
    p.add_argument("names", nargs="*", help="traces to fetch, or 'all'")
    p.add_argument("--trace-dir", help=f"trace folder (default: ${ENV_VAR}, else user data)")
    p.add_argument("--url", help="fetch from this address instead (a mirror or file:// URL)")
    p.add_argument("--force", action="store_true", help="download even if already present")
    p.add_argument("--verify", action="store_true", help="list: check each file's SHA-256")
    p.set_defaults(func=cmd_traces)
    p = sub.add_parser(
        "list", help="experiments, traces, mixes, policies", formatter_class=Formatter
    )
    p.set_defaults(func=cmd_list)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("frag-sim: interrupted", file=sys.stderr)
        return 130
    except (FragSimError, OSError, ValueError, TypeError, KeyError) as exc:
        print(f"frag-sim: error: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:
        print(f"frag-sim: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
