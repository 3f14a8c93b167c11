"""Command line: ``frag-sim`` / ``python -m frag_sim`` with run, sweep, plot, experiment, list.

A config file (TOML or JSON) holds ``[workload]`` (a :class:`WorkloadSpec`), ``[sim]`` (a
:class:`SimConfig`) and optionally ``[sweep]`` (``policies``, ``block_sizes``,
``capacities``, ``traces``); flags override it. Results go to stdout as a table, or to
``--json`` / ``--csv`` files (written atomically). Progress goes to stderr, and only when
stderr is a terminal.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._cli_util import csv_ints, load_config, print_table, progress, write_outputs
from ._io import write_csv, write_json
from .config import POLICIES, SimConfig
from .errors import FragSimError
from .experiments import EXPERIMENTS, TRACE_SCENARIOS, run_experiment
from .simulator import simulate
from .sweep import WorkloadSpec, run_sweep
from .traces import TRACE_FILES
from .workload import LENGTH_MIXES


def _add_common(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("workload")
    g.add_argument("--config", help="TOML or JSON file with [workload], [sim], [sweep]")
    g.add_argument("--trace", help=f"trace name ({', '.join(TRACE_FILES)}) or file path")
    g.add_argument("--trace-dir", help="folder holding the traces (default: ../shared/traces)")
    g.add_argument("--csv-trace", help="generic CSV trace (needs --columns)")
    g.add_argument("--columns", help="arrival=COL,prompt_len=COL,output_len=COL for --csv-trace")
    g.add_argument("--arrival-unit", help="s, ms, us or datetime (generic CSV)")
    g.add_argument("--mix", help=f"synthetic length mix ({', '.join(LENGTH_MIXES)})")
    g.add_argument("--num-requests", type=int, help="synthetic: number of requests")
    g.add_argument("--rate", type=float, help="synthetic: requests per second (inf allowed)")
    g.add_argument("--burstiness", type=float, help="synthetic: gamma shape (1 = Poisson)")
    g.add_argument("--seed", type=int, help="synthetic: RNG seed")
    g.add_argument("--head", type=int, help="replay only the first N requests")
    s = p.add_argument_group("memory and scheduler")
    s.add_argument("--policies", help=f"comma list of {', '.join(POLICIES)}")
    s.add_argument("--capacity-tokens", type=int, help="KV memory in token slots")
    s.add_argument("--max-model-len", type=int, help="longest request allowed (tokens)")
    s.add_argument("--block-size", type=int, help="paged block size (tokens)")
    s.add_argument("--allocator", choices=["buddy", "first_fit"], help="contiguous allocator")
    s.add_argument(
        "--prefix-caching", action="store_true", default=None, help="paged: enable prefix caching"
    )
    s.add_argument("--preemption", choices=["recompute", "swap"], help="paged preemption mode")
    s.add_argument("--swap-time-per-block", type=float, help="seconds per swapped block")
    s.add_argument("--step-time", type=float, help="seconds per decode step")
    s.add_argument("--max-num-seqs", type=int, help="cap on requests running at once")
    s.add_argument("--n", type=int, help="sequences per request: samples or beams (fork + CoW)")
    s.add_argument(
        "--beam-search",
        action="store_true",
        default=None,
        help="the --n sequences are beams (uniform parent resampling every step)",
    )
    s.add_argument("--beam-seed", type=int, help="seed of the beam selection model")
    o = p.add_argument_group("output")
    o.add_argument("--json", dest="json_out", help="write results as JSON")
    o.add_argument("--csv", dest="csv_out", help="write results as CSV")


def _workload_spec(a: argparse.Namespace, cfg: dict[str, Any]) -> WorkloadSpec:
    d: dict[str, Any] = dict(cfg.get("workload", {}))
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
    d: dict[str, Any] = {}
    if spec.kind == "trace" and spec.trace in TRACE_SCENARIOS:
        d.update(TRACE_SCENARIOS[spec.trace])
    d.update(cfg.get("sim", {}))
    for flag, key in (
        ("capacity_tokens", "capacity_tokens"),
        ("max_model_len", "max_model_len"),
        ("block_size", "block_size"),
        ("allocator", "allocator"),
        ("prefix_caching", "enable_prefix_caching"),
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
    return SimConfig.from_dict(d)


def _policies(a: argparse.Namespace, cfg: dict[str, Any]) -> list[str]:
    raw = a.policies or ",".join(cfg.get("sweep", {}).get("policies", POLICIES))
    pols = [p.strip() for p in raw.split(",") if p.strip()]
    bad = [p for p in pols if p not in POLICIES]
    if bad or not pols:
        raise FragSimError(f"--policies must be a comma list of {POLICIES}, got {raw!r}")
    return pols


def cmd_run(a: argparse.Namespace) -> int:
    cfg = load_config(a.config)
    spec = _workload_spec(a, cfg)
    base = _sim_config(a, cfg, spec)
    wl = spec.build()
    results = {p: simulate(wl, base.replace(policy=p)) for p in _policies(a, cfg)}
    rows = [r.summary() for r in results.values()]
    print_table(rows)
    for r in results.values():
        if r.rejected:
            i, why = r.rejected[0]
            print(
                f"{r.config.label}: {len(r.rejected)} rejected (first: request {i}: {why})",
                file=sys.stderr,
            )
    if a.timeseries:
        ts_rows = []
        for p, r in results.items():
            ts = r.timeseries
            assert ts is not None
            ts_rows += [{"policy": p, **row} for row in ts.to_rows()]
        if Path(a.timeseries).suffix.lower() == ".json":
            write_json(a.timeseries, ts_rows)
        else:
            write_csv(a.timeseries, ts_rows)
    if a.plot:
        from .plot import plot_usage_over_time

        plot_usage_over_time(
            {r.config.label: r for r in results.values()},
            a.plot,
            title=f"KV memory over time: {wl.name}",
        )
    if a.plot_waste:
        from .plot import plot_waste_over_time

        plot_waste_over_time(
            {r.config.label: r for r in results.values()},
            a.plot_waste,
            title=f"Where KV memory goes over time: {wl.name}",
        )
    write_outputs(a, rows)
    return 0


def cmd_sweep(a: argparse.Namespace) -> int:
    cfg = load_config(a.config)
    sw = dict(cfg.get("sweep", {}))
    traces = a.traces.split(",") if a.traces else list(sw.get("traces", []))
    specs = (
        [WorkloadSpec(kind="trace", trace=t, trace_dir=a.trace_dir, head=a.head) for t in traces]
        if traces
        else [_workload_spec(a, cfg)]
    )
    bss = (
        csv_ints(a.block_sizes, "--block-sizes")
        if a.block_sizes
        else list(sw.get("block_sizes", [16]))
    )
    caps = (
        csv_ints(a.capacities, "--capacities") if a.capacities else list(sw.get("capacities", []))
    )
    tasks = []
    for spec in specs:
        base = _sim_config(a, cfg, spec)
        for pol in _policies(a, cfg):
            for cap in caps or [base.capacity_tokens]:
                # contiguous policies ignore the block size: one run each
                for bs in bss if pol == "paged" else bss[:1]:
                    tasks.append(
                        (spec, base.replace(policy=pol, block_size=bs, capacity_tokens=cap))
                    )
    t0 = time.perf_counter()
    rows = run_sweep(tasks, jobs=a.jobs, progress=progress())
    wall = time.perf_counter() - t0
    print_table(rows)
    print(f"{len(rows)} runs in {wall:.2f} s on {a.jobs} process(es)", file=sys.stderr)
    write_outputs(a, rows)
    return 0


def cmd_plot(a: argparse.Namespace) -> int:
    from . import plot as P
    from .experiments import PAPER_FIG2

    kinds = (
        ["headline", "waste", "waste-over-time", "block-size", "admissions"]
        if a.kind == "all"
        else [a.kind]
    )
    fmts = [f.strip() for f in a.formats.split(",") if f.strip()]
    bad = [f for f in fmts if f not in ("png", "svg")]
    if bad or not fmts:
        raise FragSimError(f"--formats must be a comma list of png, svg; got {a.formats!r}")
    if a.out and len(kinds) == 1:
        paths = {kinds[0]: [Path(a.out)]}
    else:
        paths = {k: [Path(a.out_dir) / f"{k}.{f}" for f in fmts] for k in kinds}
    for kind in kinds:
        if kind == "headline":
            rep = run_experiment("seed003", quick=a.quick)
            res = {
                "naive (max reservation)": rep.results["max"],
                "paged (block 16)": rep.results["paged"],
            }
            for path in paths[kind]:
                P.plot_usage_over_time(
                    res, path, title="Seed 003: naive contiguous vs paged KV cache"
                )
        elif kind == "waste-over-time":
            rep = run_experiment("seed003", quick=a.quick)
            res = {
                "naive (max reservation)": rep.results["max"],
                "paged (block 16)": rep.results["paged"],
            }
            for path in paths[kind]:
                P.plot_waste_over_time(res, path, title="Seed 003: where KV memory goes over time")
        elif kind == "waste":
            rep = run_experiment("fig2", quick=a.quick)
            for path in paths[kind]:
                P.plot_waste_breakdown(rep.results, path, paper=PAPER_FIG2)
        elif kind == "admissions":
            rep = run_experiment("fig13", quick=a.quick)
            sel = {k: rep.results[k] for k in ("max", "exact", "paged")}
            for path in paths[kind]:
                P.plot_admissions(sel, path, title="ShareGPT-like at 2 req/s on 15,728 slots")
        else:
            rep = run_experiment("block_size", quick=a.quick, trace_dir=a.trace_dir)
            curves: dict[str, list[tuple[int, float]]] = {}
            for key, r in rep.results.items():
                name, bs = key.rsplit("/", 1)
                curves.setdefault(name, []).append((int(bs), r.token_usage))
            for path in paths[kind]:
                P.plot_block_size(curves, path)
        for path in paths[kind]:
            print(path)
    return 0


def cmd_experiment(a: argparse.Namespace) -> int:
    names = list(EXPERIMENTS) if a.name == "all" else [a.name]
    ok = True
    dump = {}
    for n in names:
        rep = run_experiment(n, quick=a.quick, trace_dir=a.trace_dir)
        print(rep.render())
        print()
        ok &= rep.ok
        dump[n] = {"title": rep.title, "rows": rep.rows, "checks": rep.checks, "notes": rep.notes}
    if a.json_out:
        write_json(a.json_out, dump)
    return 0 if ok else 1


def cmd_list(a: argparse.Namespace) -> int:
    print("experiments:")
    for e in EXPERIMENTS.values():
        print(f"  {e.name:12s} {e.title}")
    print("traces:", ", ".join(TRACE_FILES))
    print("length mixes:", ", ".join(LENGTH_MIXES))
    print("policies:", ", ".join(POLICIES))
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="frag-sim", description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("run", help="replay one workload under each policy")
    _add_common(p)
    p.add_argument(
        "--timeseries", help="write the per-event time series with its waste split (.csv/.json)"
    )
    p.add_argument("--plot", help="write a usage-over-time plot (.png or .svg)")
    p.add_argument("--plot-waste", help="write the waste split over time (.png or .svg)")
    p.set_defaults(func=cmd_run)
    p = sub.add_parser("sweep", help="policies x block sizes x capacities x traces")
    _add_common(p)
    p.add_argument("--traces", help="comma list of traces (one workload per trace)")
    p.add_argument("--block-sizes", help="comma list, e.g. 4,8,16,32,64,128,256,512")
    p.add_argument("--capacities", help="comma list of capacity_tokens values")
    p.add_argument("--jobs", type=int, default=1, help="worker processes")
    p.set_defaults(func=cmd_sweep)
    p = sub.add_parser("plot", help="regenerate the README figures")
    p.add_argument(
        "kind",
        choices=["headline", "waste", "waste-over-time", "block-size", "admissions", "all"],
    )
    p.add_argument("--out", help="output file (single kind)")
    p.add_argument("--out-dir", default=".", help="folder for 'all' (default .)")
    p.add_argument("--formats", default="png", help="comma list: png,svg")
    p.add_argument("--quick", action="store_true", help="small runs (for tests)")
    p.add_argument("--trace-dir")
    p.set_defaults(func=cmd_plot)
    p = sub.add_parser("experiment", help="run a named reproduction (or 'all')")
    p.add_argument("name", choices=[*EXPERIMENTS, "all"])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--trace-dir")
    p.add_argument("--json", dest="json_out")
    p.set_defaults(func=cmd_experiment)
    p = sub.add_parser("list", help="experiments, traces, mixes, policies")
    p.set_defaults(func=cmd_list)
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (FragSimError, FileNotFoundError, ValueError) as exc:
        print(f"frag-sim: error: {exc}", file=sys.stderr)
        return 2
