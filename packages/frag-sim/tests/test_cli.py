from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from frag_sim.cli import main


def test_run_writes_json_csv_timeseries(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(
        [
            "run",
            "--mix",
            "sharegpt",
            "--num-requests",
            "120",
            "--rate",
            "2",
            "--capacity-tokens",
            "15728",
            "--max-model-len",
            "2048",
            "--allocator",
            "buddy",
            "--block-size",
            "16",
            "--policies",
            "max,paged",
            "--json",
            str(tmp_path / "r.json"),
            "--csv",
            str(tmp_path / "r.csv"),
            "--timeseries",
            str(tmp_path / "ts.csv"),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "max (buddy)" in out and "paged/16" in out
    data = json.loads((tmp_path / "r.json").read_text())
    assert [d["label"] for d in data] == ["max (buddy)", "paged/16"]
    assert data[0]["peak_running"] == 7
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert len(rows) == 2
    ts = list(csv.DictReader((tmp_path / "ts.csv").open()))
    assert {r["policy"] for r in ts} == {"max", "paged"}
    for r in ts:  # the waste split per event window sums to 100 % with the token share
        split = ("token_states", "reservation", "internal", "external", "idle")
        assert sum(float(r[f"share.{k}"]) for k in split) == pytest.approx(1.0)
    # the window integrals add up to the summary's breakdown
    for d in data:
        rows_p = [r for r in ts if r["policy"] == d["label"].split()[0].split("/")[0]]
        mem = sum(float(r["memory"]) for r in rows_p)
        res = sum(float(r["reservation"]) for r in rows_p) / mem
        assert res == pytest.approx(d["share.reservation"], rel=1e-9)


def test_beam_example_config(tmp_path: Path) -> None:
    cfg = Path(__file__).parents[1] / "examples" / "beam.toml"
    out = tmp_path / "b.json"
    assert main(["run", "--config", str(cfg), "--num-requests", "150", "--json", str(out)]) == 0
    rows = {r["label"]: r for r in json.loads(out.read_text())}
    assert set(rows) == {"exact (buddy) beam=4", "paged/16 beam=4"}
    paged = rows["paged/16 beam=4"]
    assert paged["cow_copies"] > 0 and paged["sharing_saved"] > 0.3
    assert paged["mean_running"] > rows["exact (buddy) beam=4"]["mean_running"]


def test_run_timeseries_json_and_waste_plot(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    args = ["run", "--mix", "alpaca", "--num-requests", "60", "--policies", "exact,paged"]
    args += ["--n", "2", "--beam-search", "--capacity-tokens", "4000", "--block-size", "16"]
    args += ["--timeseries", str(tmp_path / "ts.json"), "--plot-waste", str(tmp_path / "w.svg")]
    assert main(args) == 0
    ts = json.loads((tmp_path / "ts.json").read_text())
    assert {r["policy"] for r in ts} == {"exact", "paged"}
    assert all(r["window_steps"] >= 1 and "share.internal" in r for r in ts)
    assert (tmp_path / "w.svg").read_bytes().startswith(b"<?xml")


def test_config_file_plus_flag_override(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        '[workload]\nkind = "synthetic"\nmix = "capstone"\nnum_requests = 80\n'
        "rate = 8.0\n[sim]\ncapacity_tokens = 144000\nmax_model_len = 4500\n"
        "block_size = 32\n"
    )
    out = tmp_path / "o.json"
    assert (
        main(
            [
                "run",
                "--config",
                str(cfg),
                "--policies",
                "paged",
                "--block-size",
                "64",
                "--json",
                str(out),
            ]
        )
        == 0
    )
    (row,) = json.loads(out.read_text())
    assert row["config.block_size"] == 64 and row["config.capacity_tokens"] == 144000
    jcfg = tmp_path / "c.json"
    jcfg.write_text(
        json.dumps(
            {"workload": {"mix": "alpaca", "num_requests": 30}, "sim": {"max_model_len": 1024}}
        )
    )
    assert main(["run", "--config", str(jcfg), "--policies", "exact"]) == 0


@pytest.mark.parametrize(
    ("args", "msg"),
    [
        (["run", "--rate", "0"], "rate must be > 0"),
        (["run", "--num-requests", "-3"], "num_requests"),
        (["run", "--block-size", "0"], "block_size"),
        (["run", "--policies", "max,lru"], "--policies"),
        (["run", "--mix", "nope"], "unknown length mix"),
        (["run", "--capacity-tokens", "-1"], "capacity_tokens"),
        (["sweep", "--block-sizes", "16,x"], "--block-sizes"),
    ],
)
def test_bad_input_exits_2_without_output(
    tmp_path: Path, args: list[str], msg: str, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "never.json"
    assert main([*args, "--json", str(out)]) == 2
    assert msg in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.iterdir())


def test_malformed_trace_reports_file_and_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "t.csv"
    bad.write_text("t,p,o\n0,5,5\n1,5,oops\n")
    out = tmp_path / "out.csv"
    rc = main(
        [
            "run",
            "--csv-trace",
            str(bad),
            "--columns",
            "arrival=t,prompt_len=p,output_len=o",
            "--csv",
            str(out),
        ]
    )
    assert rc == 2
    assert f"{bad}:3:" in capsys.readouterr().err
    assert not out.exists()
    rc = main(
        ["run", "--csv-trace", str(bad), "--columns", "arrival=time,prompt_len=p,output_len=o"]
    )
    assert rc == 2 and "unknown column" in capsys.readouterr().err


def test_sweep_over_processes(tmp_path: Path) -> None:
    out = tmp_path / "s.json"
    sweep = [
        "sweep",
        "--mix",
        "alpaca",
        "--num-requests",
        "200",
        "--rate",
        "20",
        "--capacity-tokens",
        "4096",
        "--max-model-len",
        "1024",
        "--policies",
        "max,paged",
        "--block-sizes",
        "8,16,32",
    ]
    rc = main([*sweep, "--jobs", "2", "--json", str(out)])
    assert rc == 0
    rows = json.loads(out.read_text())
    assert [(r["config.policy"], r["config.block_size"]) for r in rows] == [
        ("max", 8),
        ("paged", 8),
        ("paged", 16),
        ("paged", 32),
    ]
    serial = tmp_path / "s1.json"
    main([*sweep, "--json", str(serial)])
    strip = [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]
    assert strip == [
        {k: v for k, v in r.items() if k != "wall_s"} for r in json.loads(serial.read_text())
    ]


def test_module_entry_point_and_list() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "frag_sim", "list"], capture_output=True, text=True, check=True
    )
    assert "fig13" in res.stdout and "azure_conv" in res.stdout


def test_experiment_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["experiment", "fig13"]) == 0
    assert "[ok] max reservation admits exactly 7" in capsys.readouterr().out
