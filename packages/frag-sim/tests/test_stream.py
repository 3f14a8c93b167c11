"""Streaming: chunked replay gives the run's numbers exactly, with state for live requests only."""

from __future__ import annotations

import json
import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from _reference import random_workload
from hypothesis import given, settings
from hypothesis import strategies as st

from frag_sim import (
    ConfigError,
    SimConfig,
    SimResult,
    TraceFormatError,
    Workload,
    load_trace,
    simulate,
)
from frag_sim.engine.contiguous import ContiguousEngine
from frag_sim.engine.paged import PagedEngine
from frag_sim.workload.stream import RequestStream, stream_trace, tile


def _same(r: SimResult) -> dict[str, object]:
    return {
        k: None if isinstance(v, float) and math.isnan(v) else v
        for k, v in r.summary().items()
        if k not in ("wall_s", "mean_latency_s")
    }


CONFIGS = [
    SimConfig(policy="paged", capacity_tokens=400, block_size=4, record_timeseries=False),
    SimConfig(policy="paged", capacity_tokens=400, block_size=4),
    SimConfig(policy="paged", capacity_tokens=300, block_size=8, enable_prefix_caching=True),
    SimConfig(policy="paged", capacity_tokens=600, block_size=4, n=2, record_timeseries=False),
    SimConfig(policy="max", capacity_tokens=400, max_model_len=80, record_timeseries=False),
    SimConfig(policy="pow2", capacity_tokens=400, max_model_len=80, allocator="first_fit"),
    SimConfig(
        policy="paged",
        capacity_tokens=200,
        block_size=2,
        preemption="swap",
        swap_time_per_block_s=0.01,
        max_num_seqs=5,
        record_timeseries=False,
    ),
]


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    chunk=st.integers(1, 50),
    rate=st.sampled_from([0.5, 5.0, 50.0]),
    which=st.integers(0, len(CONFIGS) - 1),
)
def test_any_chunking_gives_the_in_memory_numbers(
    seed: int, chunk: int, rate: float, which: int
) -> None:
    wl = random_workload(seed, 60, rate, 40, 40)
    cfg = CONFIGS[which]
    whole = simulate(wl, cfg)
    streamed = simulate(RequestStream.of(wl, chunk_size=chunk), cfg)
    assert _same(streamed) == _same(whole)
    assert streamed.mean_latency_s == pytest.approx(whole.mean_latency_s)
    assert [i for i, _ in streamed.rejected] == [i for i, _ in whole.rejected]


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    bs=st.sampled_from([1, 2, 4, 16]),
    blocks=st.integers(6, 60),
    rate=st.sampled_from([0.5, 5.0, 50.0]),
    swap=st.booleans(),
)
def test_counted_blocks_equal_the_real_block_pool(
    seed: int, bs: int, blocks: int, rate: float, swap: bool
) -> None:
    """The hot path counts blocks; the BlockPool run (use_block_pool) gives the same run."""
    wl = random_workload(seed, 50, rate, 40, 40)
    cfg = SimConfig(
        capacity_tokens=blocks * bs,
        block_size=bs,
        max_model_len=80,
        preemption="swap" if swap else "recompute",
        swap_time_per_block_s=0.003 if swap else 0.0,
        record_timeseries=False,
    )
    counted = simulate(wl, cfg)
    pooled = simulate(wl, cfg.replace(use_block_pool=True))
    general = PagedEngine(wl, cfg).run()
    assert _same(counted) == {**_same(pooled), "config.use_block_pool": False}
    assert _same(general) == _same(counted)


def test_engine_keeps_state_only_for_live_requests() -> None:
    wl = random_workload(3, 300, 5.0, 40, 40)
    for eng in (
        PagedEngine(wl, SimConfig(capacity_tokens=200, block_size=4)),
        ContiguousEngine(wl, SimConfig(policy="exact", capacity_tokens=400, max_model_len=80)),
    ):
        r = eng.run()
        assert r.completed == 300
        assert not eng.P and not eng.epoch and not eng.emitted and not eng.A


def _tiled(wl: Workload, n: int) -> Workload:
    m = len(wl)
    span = float(wl.arrival_s[-1] - wl.arrival_s[0])
    period = span + span / (m - 1)
    k = np.arange(n)
    return Workload(
        "t",
        (wl.arrival_s - wl.arrival_s[0])[k % m] + (k // m) * period,
        wl.prompt_len[k % m],
        wl.output_len[k % m],
    )


def test_tile_continues_the_trace_in_time() -> None:
    wl = random_workload(5, 40, 5.0, 40, 40)
    cfg = SimConfig(capacity_tokens=300, block_size=4, record_timeseries=False)
    streamed = simulate(tile(wl, 130, chunk_size=17), cfg)
    assert streamed.num_requests == 130
    assert _same(streamed) == {
        **_same(simulate(_tiled(wl, 130), cfg)),
        "workload": streamed.workload,
    }
    with pytest.raises(ConfigError, match="num_requests"):
        tile(wl, 0)


def test_memory_follows_live_requests_not_stream_length() -> None:
    """Four times the requests (same rate, same live set): about the same peak memory."""
    wl = random_workload(7, 500, 5.0, 300, 300)  # ~40 running, nobody queues for long
    cfg = SimConfig(capacity_tokens=65_536, max_model_len=1024, record_timeseries=False)
    peaks = []
    simulate(tile(wl, 200), cfg)  # warm imports and caches outside the measurement
    for n in (1_500, 6_000):
        tracemalloc.start()
        r = simulate(tile(wl, n, chunk_size=250), cfg)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert r.completed == n
    assert peaks[1] < 1.3 * peaks[0], peaks


def test_stream_trace_reads_chunks_like_load_trace(tmp_path: Path) -> None:
    csv = tmp_path / "a.csv"
    csv.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        + "".join(f"2023-11-16 18:17:{s:02d}.5000000,{100 + s},{1 + s}\n" for s in range(30))
    )
    jl = tmp_path / "m.jsonl"
    jl.write_text(
        "".join(
            json.dumps(
                {
                    "timestamp": 100 * s,
                    "input_length": 600,
                    "output_length": 3,
                    "hash_ids": [s % 3, s],
                }
            )
            + "\n"
            for s in range(25)
        )
    )
    cfg = SimConfig(capacity_tokens=2048, max_model_len=1024, block_size=16)
    for path, c in ((csv, cfg), (jl, cfg.replace(enable_prefix_caching=True, block_size=512))):
        whole = simulate(load_trace(str(path)), c)
        streamed = simulate(stream_trace(path, chunk_size=4), c)
        assert _same(streamed) == _same(whole)


def test_stream_trace_rejects_unsorted_rows_with_the_line(tmp_path: Path) -> None:
    csv = tmp_path / "u.csv"
    csv.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n"
        "2023-11-16 18:17:05.0000000,10,2\n2023-11-16 18:17:01.0000000,10,2\n"
    )
    with pytest.raises(TraceFormatError, match=r"u\.csv:3:.*sorted"):
        simulate(stream_trace(csv), SimConfig())
    with pytest.raises(FileNotFoundError):
        stream_trace(tmp_path / "missing.csv")


def test_unsorted_chunks_are_rejected() -> None:
    def gen():  # type: ignore[no-untyped-def]
        from frag_sim.workload.stream import Chunk

        one = np.ones(2, dtype=np.int64)
        yield Chunk(np.array([5.0, 6.0]), one, one)
        yield Chunk(np.array([1.0, 2.0]), one, one)

    with pytest.raises(ConfigError, match="sorted"):
        simulate(RequestStream("bad", gen), SimConfig())


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    policy=st.sampled_from(["max", "pow2", "exact"]),
    allocator=st.sampled_from(["buddy", "first_fit"]),
    cap=st.integers(60, 600),
    rate=st.sampled_from([0.5, 5.0, 50.0]),
    seqs=st.sampled_from([None, 3]),
)
def test_contiguous_loop_equals_the_general_engine(
    seed: int, policy: str, allocator: str, cap: int, rate: float, seqs: int | None
) -> None:
    wl = random_workload(seed, 50, rate, 40, 40)
    cfg = SimConfig(
        policy=policy,  # type: ignore[arg-type]
        allocator=allocator,  # type: ignore[arg-type]
        capacity_tokens=cap,
        max_model_len=80,
        max_num_seqs=seqs,
        prefill_time_per_token_s=0.001,
        record_timeseries=False,
    )
    fast = simulate(wl, cfg)
    general = super(ContiguousEngine, ContiguousEngine(wl, cfg)).run()
    assert _same(fast) == _same(general)
    assert fast.mean_latency_s == pytest.approx(general.mean_latency_s, nan_ok=True)
