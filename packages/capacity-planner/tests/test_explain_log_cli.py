"""The explain-log command: register() into a parent parser, stdin, --json, exit codes."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path

import pytest

from capacity_planner.explain import (
    EXIT_INCONSISTENT,
    EXIT_NOTHING_FOUND,
    EXIT_OK,
    EXIT_USAGE,
    main,
    register,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "logs"
GOOD = DOCS / "v0.6.4-issue-10517-llama3.1-8b-rtx3090.log"
SEED = DOCS / "phase02-lab03-as-quoted.constructed.log"


def _parent() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="capacity-planner")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    return parser


def test_register_adds_subcommand_with_handler(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parent().parse_args(["explain-log", str(GOOD), "--model", "llama-3.1-8b"])
    assert args.func(args) == EXIT_OK
    out = capsys.readouterr().out
    assert "3 start-ups found" in out and "1. profile" in out and "3. carve" in out


def test_json_output_is_machine_readable(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parent().parse_args(["explain-log", str(SEED), "--json"])
    assert args.func(args) == EXIT_INCONSISTENT
    data = json.loads(capsys.readouterr().out)
    assert data["consistent"] is False
    (run,) = data["runs"]
    statuses = {c["name"]: c["status"] for c in run["checks"]}
    assert statuses["maximum concurrency"] == "inconsistent"
    assert {"settings", "missing", "notes", "engine"} <= set(run)


def test_stdin_dash(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(GOOD.read_text(encoding="utf-8")))
    assert main(["-"]) == EXIT_OK
    assert "<stdin>" in capsys.readouterr().out


def test_nothing_found_exit_code(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.log"
    junk.write_bytes(b"\xff\xfe not a vllm log \x00\n")
    assert main([str(junk)]) == EXIT_NOTHING_FOUND
    assert "no vLLM start-up lines found" in capsys.readouterr().out


def test_unreadable_file_and_unknown_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path / "missing.log")]) == EXIT_USAGE
    assert "cannot read" in capsys.readouterr().err
    assert main([str(GOOD), "--model", "no-such-model-xyz"]) == EXIT_USAGE
    assert "unknown model" in capsys.readouterr().err


def test_model_config_path(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = {
        "model_type": "llama", "num_hidden_layers": 32, "hidden_size": 4096,
        "num_attention_heads": 32, "num_key_value_heads": 8, "intermediate_size": 14336,
        "vocab_size": 128256, "max_position_embeddings": 131072, "torch_dtype": "bfloat16",
    }  # fmt: skip
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert main([str(GOOD), "--model", str(path)]) == EXIT_OK
    assert "2,097,152 B per block" in capsys.readouterr().out
    assert main([str(GOOD), "--model", str(tmp_path)]) == EXIT_OK  # a folder holding config.json


@pytest.mark.parametrize(
    "argv",
    [["--block-size", "0"], ["--gpu-memory-utilization", "1.5"], ["--max-model-len", "x"]],
)
def test_bad_option_values_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([str(GOOD), *argv])
    assert info.value.code == 2


def test_overrides_fill_what_the_log_lacks(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(SEED), "--max-model-len", "2048"]) == EXIT_INCONSISTENT
    out = capsys.readouterr().out
    assert "max_model_len = 2048  (--max-model-len)" in out and "truncated" in out
