from __future__ import annotations

from pathlib import Path

import pytest

from frag_sim import (
    ConfigError,
    EmptyTraceError,
    TraceFormatError,
    load_azure_csv,
    load_csv,
    load_mooncake_jsonl,
    load_trace,
    prefix_stats,
)

AZ = "TIMESTAMP,ContextTokens,GeneratedTokens\n"


def _w(tmp: Path, name: str, text: str) -> Path:
    p = tmp / name
    p.write_text(text)
    return p


def test_azure_parsing_relative_seconds(tmp_path: Path) -> None:
    p = _w(
        tmp_path,
        "a.csv",
        AZ + "2023-11-16 23:59:59.5000000,10,2\n2023-11-17 00:00:01.2500000,20,3\n",
    )
    w = load_azure_csv(p)
    assert w.arrival_s.tolist() == pytest.approx([0.0, 1.75])
    assert w.prompt_len.tolist() == [10, 20] and w.output_len.tolist() == [2, 3]


@pytest.mark.parametrize(
    ("body", "line", "match"),
    [
        ("2023-11-16 18:00:00.0,10,2\n2023-11-16 18:00:01.0,x,2\n", 3, "ContextTokens"),
        ("2023-11-16 18:00:00.0,10\n", 2, "expected 3 fields"),
        ("yesterday,10,2\n", 2, "TIMESTAMP"),
        ("2023-11-16 18:00:00.0,10,0\n", 2, "GeneratedTokens must be >= 1"),
        ("2023-11-16 18:00:00.0,-5,3\n", 2, ">= 1"),
    ],
)
def test_malformed_rows_name_file_and_line(
    tmp_path: Path, body: str, line: int, match: str
) -> None:
    p = _w(tmp_path, "bad.csv", AZ + body)
    with pytest.raises(TraceFormatError, match=match) as ei:
        load_azure_csv(p)
    assert ei.value.line == line and str(p) in str(ei.value)


def test_empty_traces(tmp_path: Path) -> None:
    with pytest.raises(EmptyTraceError):
        load_azure_csv(_w(tmp_path, "e.csv", ""))
    with pytest.raises(EmptyTraceError):
        load_azure_csv(_w(tmp_path, "h.csv", AZ))
    with pytest.raises(EmptyTraceError):
        load_mooncake_jsonl(_w(tmp_path, "e.jsonl", "\n"))


def test_generic_csv_mapping_units_and_unknown_columns(tmp_path: Path) -> None:
    p = _w(tmp_path, "g.csv", "t_ms,in,out\n1500,4,5\n500,6,7\n")
    w = load_csv(p, {"arrival": "t_ms", "prompt_len": "in", "output_len": "out"}, arrival_unit="ms")
    assert w.arrival_s.tolist() == [0.0, 1.0]  # sorted, relative
    assert w.prompt_len.tolist() == [6, 4]
    with pytest.raises(TraceFormatError, match="unknown column"):
        load_csv(p, {"arrival": "time", "prompt_len": "in", "output_len": "out"})
    with pytest.raises(ConfigError, match="columns must map"):
        load_csv(p, {"arrival": "t_ms", "prompt_len": "in"})
    with pytest.raises(ConfigError, match="arrival_unit"):
        load_csv(
            p, {"arrival": "t_ms", "prompt_len": "in", "output_len": "out"}, arrival_unit="hours"
        )


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("{not json", "invalid JSON"),
        ('{"timestamp": 0, "input_length": 10}', "output_length"),
        ('{"timestamp": -1, "input_length": 10, "output_length": 1, "hash_ids": [1]}', "timestamp"),
        (
            '{"timestamp": 0, "input_length": 600, "output_length": 1, "hash_ids": [1]}',
            "expected ceil",
        ),
        (
            '{"timestamp": 0, "input_length": 6, "output_length": 1, "hash_ids": ["a"]}',
            "list of integers",
        ),
        ("[1, 2]", "JSON object"),
    ],
)
def test_mooncake_malformed(tmp_path: Path, line: str, match: str) -> None:
    ok = '{"timestamp": 0, "input_length": 10, "output_length": 2, "hash_ids": [0]}\n'
    p = _w(tmp_path, "m.jsonl", ok + line + "\n")
    with pytest.raises(TraceFormatError, match=match) as ei:
        load_mooncake_jsonl(p)
    assert ei.value.line == 2


def test_unknown_trace_name() -> None:
    with pytest.raises(ConfigError, match="unknown trace"):
        load_trace("not-a-trace")


@pytest.mark.traces
def test_real_traces(trace_dir: Path) -> None:
    conv = load_trace("azure_conv", trace_dir)
    assert len(conv) == 19_366
    assert conv.prompt_len.mean() == pytest.approx(1154.7, abs=0.1)
    assert conv.stats()["rate_per_s"] == pytest.approx(5.53, abs=0.01)
    assert len(load_trace("azure_code", trace_dir)) == 8_819
    moon = load_trace("mooncake_conversation", trace_dir)
    assert len(moon) == 12_031 and moon.hash_ids is not None
    # the traces README: 36.6% / 64.0% of prefix blocks repeat an earlier one
    assert prefix_stats(moon).repeated_share == pytest.approx(0.366, abs=0.001)
    syn = load_trace("mooncake_synthetic", trace_dir)
    assert prefix_stats(syn).repeated_share == pytest.approx(0.640, abs=0.001)


@pytest.mark.traces
@pytest.mark.slow
def test_paged_usage_matches_the_traces_readme_anchors(trace_dir: Path) -> None:
    """shared/traces/README.md computes live/allocated analytically (no queueing)."""
    from frag_sim import simulate
    from frag_sim.experiments import trace_config

    wl = load_trace("azure_conv", trace_dir)
    for bs, anchor in ((16, 0.9939), (128, 0.9506), (512, 0.8363)):
        r = simulate(wl, trace_config("azure_conv", block_size=bs, record_timeseries=False))
        assert r.token_usage == pytest.approx(anchor, abs=0.001)
        assert r.completed == len(wl)
