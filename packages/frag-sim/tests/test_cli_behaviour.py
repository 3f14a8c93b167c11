"""The command line behaves: defaults, --version, --json -, clean errors, traces, events."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import frag_sim
from frag_sim.cli import HEADLINE, build_parser, main
from frag_sim.workload import catalog


def test_bare_run_is_the_headline_and_admits_everything(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["run", "--json", "-", "--num-requests", "200"]) == 0
    cap = capsys.readouterr()
    rows = json.loads(cap.out)  # only JSON on stdout; the table went to stderr
    assert [r["label"] for r in rows] == ["max (first_fit)", "paged/64"]
    assert all(r["rejected"] == 0 and r["completed"] == 200 for r in rows)
    assert rows[0]["config.capacity_tokens"] == HEADLINE["capacity_tokens"]
    assert "label" in cap.err
    assert all(r["config.record_timeseries"] is False for r in rows)  # only when asked


def test_block_size_follows_the_vllm_version(capsys: pytest.CaptureFixture[str]) -> None:
    main(["run", "--num-requests", "50", "--policies", "paged", "--vllm-version", "0.33",
          "--json", "-"])  # fmt: skip
    assert json.loads(capsys.readouterr().out)[0]["config.block_size"] == 16
    main(["run", "--num-requests", "50", "--policies", "paged", "--block-size", "32",
          "--json", "-"])  # fmt: skip
    assert json.loads(capsys.readouterr().out)[0]["config.block_size"] == 32


def test_headline_cli_example_prints_the_readme_numbers(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The README's command for the headline workload: usage 0.505 vs 0.997."""
    assert main(["run", "--vllm-version", "0.33", "--json", "-"]) == 0
    rows = {r["label"]: r for r in json.loads(capsys.readouterr().out)}
    assert round(rows["max (first_fit)"]["token_usage"], 3) == 0.505
    assert round(rows["paged/16"]["token_usage"], 3) == 0.997
    assert round(rows["paged/16"]["mean_running"], 1) == 57.5
    assert round(rows["max (first_fit)"]["mean_running"], 1) == 31.0


def test_help_shows_defaults_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    run = build_parser()._subparsers._group_actions[0].choices["run"]  # type: ignore[union-attr]
    text = run.format_help()
    assert "(default: 0.34)" in text and "mix=capstone" in text and "(default: None)" not in text
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert frag_sim.__version__ in capsys.readouterr().out


def test_output_under_a_regular_file_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rc = main(["run", "--num-requests", "20", "--json", str(blocker / "out.json")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("frag-sim: error:") and "Traceback" not in err


def test_failed_plot_leaves_no_timeseries_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ts = tmp_path / "ts.csv"
    rc = main(["run", "--num-requests", "20", "--timeseries", str(ts),
               "--plot", str(tmp_path / "p.bmp")])  # fmt: skip
    assert rc == 2 and "frag-sim: error:" in capsys.readouterr().err
    assert not ts.exists() and not list(tmp_path.iterdir())


def test_progress_lines_when_not_a_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from frag_sim.cli.util import Progress

    monkeypatch.setattr(Progress, "delay", 0.0)
    assert main(["run", "--num-requests", "30", "--policies", "max,exact,paged"]) == 0
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("run ")]
    assert len(lines) == 3 and "3/3" in lines[-1] and "paged/64" in lines[-1]


# -- traces ------------------------------------------------------------------------------
FIXTURE = (
    "TIMESTAMP,ContextTokens,GeneratedTokens\n"
    "2023-11-16 18:17:03.9799600,374,44\n2023-11-16 18:17:04.0000000,396,109\n"
)


@pytest.fixture
def fake_catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """azure_conv's entry pointed at a local file:// fixture with its own hash."""
    src = tmp_path / "upstream.csv"
    src.write_text(FIXTURE)
    info = catalog.CATALOG["azure_conv"]
    fake = type(info)(**{**info.__dict__, "sha256": hashlib.sha256(FIXTURE.encode()).hexdigest(),
                         "size": len(FIXTURE)})  # fmt: skip
    monkeypatch.setitem(catalog.CATALOG, "azure_conv", fake)
    return src.as_uri()


def test_traces_fetch_from_file_url_checks_sha256(
    tmp_path: Path, fake_catalog: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    folder = tmp_path / "data"
    monkeypatch.setenv(catalog.ENV_VAR, str(folder))
    assert main(["traces", "fetch", "azure_conv", "--url", fake_catalog]) == 0
    got = folder / "azure2023_conv.csv"
    assert got.read_text() == FIXTURE and "SHA-256 verified" in capsys.readouterr().out
    assert main(["run", "--trace", "azure_conv", "--policies", "paged", "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["completed"] == 2
    assert main(["run", "--trace", "azure_conv", "--tile", "7", "--policies", "paged,max",
                 "--json", "-"]) == 0  # fmt: skip
    assert [r["completed"] for r in json.loads(capsys.readouterr().out)] == [7, 7]
    assert main(["run", "--tile", "7"]) == 2  # tiling needs a trace
    assert "--tile needs --trace" in capsys.readouterr().err
    assert main(["traces", "list", "--verify"]) == 0
    out = capsys.readouterr().out
    assert "azure_conv  [verified]" in out and "CC-BY 4.0" in out
    assert "frag-sim traces fetch azure_code mooncake_conversation" in out


def test_traces_fetch_wrong_bytes_keeps_nothing(
    tmp_path: Path, fake_catalog: str, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "tampered.csv"
    bad.write_text(FIXTURE + "2023-11-16 18:17:05.0000000,1,1\n")
    folder = tmp_path / "d"
    rc = main(["traces", "fetch", "azure_conv", "--url", bad.as_uri(), "--trace-dir", str(folder)])
    assert rc == 2 and "does not match" in capsys.readouterr().err
    assert list(folder.iterdir()) == []
    rc = main(["traces", "fetch", "azure_conv", "--url", (tmp_path / "nope").as_uri(),
               "--trace-dir", str(folder)])  # fmt: skip
    assert rc == 2 and list(folder.iterdir()) == []


def test_absent_trace_names_the_fetch_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = str(tmp_path)
    assert main(["run", "--trace", "azure_code", "--trace-dir", empty]) == 2
    assert "frag-sim traces fetch azure_code" in capsys.readouterr().err
    assert main(["experiment", "prefix", "--quick", "--trace-dir", empty]) == 1
    out = capsys.readouterr().out
    assert "[missing] trace mooncake_conversation" in out and "[ok]" not in out
    assert "frag-sim traces fetch mooncake_synthetic" in out


# -- KV events ----------------------------------------------------------------------------
def test_kv_events_are_vllm_json_lines(tmp_path: Path) -> None:
    out = tmp_path / "ev.jsonl"
    args = ["run", "--mix", "alpaca", "--num-requests", "80", "--rate", "50",
            "--capacity-tokens", "2048", "--block-size", "16", "--policies", "paged"]  # fmt: skip
    assert main([*args, "--kv-events", str(out)]) == 0
    batches = [json.loads(x) for x in out.read_text().splitlines()]
    assert batches and all(set(b) == {"ts", "events", "data_parallel_rank"} for b in batches)
    assert [b["ts"] for b in batches] == sorted(b["ts"] for b in batches)
    kinds = {e["type"] for b in batches for e in b["events"]}
    assert {"BlockStored", "BlockRemoved"} <= kinds
    stored: set[str] = set()
    for b in batches:  # a router replaying the stream never sees an unknown removal
        for e in b["events"]:
            if e["type"] == "BlockStored":
                assert set(e) == {"type", "block_hashes", "parent_block_hash", "token_ids",
                                  "block_size", "lora_id", "medium", "lora_name"}  # fmt: skip
                assert len(e["token_ids"]) == 16 * len(e["block_hashes"])
                assert e["parent_block_hash"] is None or e["parent_block_hash"] in stored
                stored.update(e["block_hashes"])
            elif e["type"] == "BlockRemoved":
                assert set(e["block_hashes"]) <= stored
                stored.difference_update(e["block_hashes"])
    assert main([*args, "--policies", "max,paged", "--kv-events", str(out)]) == 2
