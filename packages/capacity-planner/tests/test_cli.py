"""The console script: reports, JSON, subcommands and one-line errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from capacity_planner.cli import build_parser, main

DATA = Path(__file__).parent / "data"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_is_the_default_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "llama-3.1-8b", "--gpu", "H100", "--max-model-len", "8192")
    assert code == 0
    assert "profile -> subtract -> carve" in out and "= available KV cache memory" in out
    assert "GPU KV cache size:" in out and "Maximum concurrency for 8,192 tokens" in out
    code2, out2, _ = run(capsys, "plan", "llama-3.1-8b", "--gpu", "H100", "--max-model-len", "8k")
    assert code2 == 0 and "Maximum concurrency for 8,000 tokens" in out2


def test_plan_json_from_config_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        str(DATA / "gpt-oss-120b.json"),
        "--gpu",
        "H200",
        "--max-model-len",
        "32768",
        "-tp",
        "2",
        "--kv-cache-dtype",
        "fp8",
        "--json",
    )
    data = json.loads(out)
    assert code == 0 and data["kv_cache"]["formula"] == "v1-extensible"  # vLLM 0.34
    assert [g["kind"] for g in data["kv_cache"]["groups"]] == ["sliding_window", "full_attention"]
    assert data["kv_cache"]["page_size_bytes"] == 64 * 4 * 128 * 1  # block 64, 4 heads/rank, fp8
    assert data["log_lines"][1].startswith("Available KV cache memory:")


def test_v0_reading_and_kv_cache_memory(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "llama-3-8b",
        "--kv-cache-memory",
        "17576MiB",
        "--max-model-len",
        "2048",
        "--vllm-version",
        "v0",
    )
    assert code == 0
    assert "# GPU blocks: 8788, # CPU blocks: 2048" in out
    assert "Maximum concurrency for 2048 tokens per request: 68.66x" in out


def test_startup_failure_exits_1_with_vllm_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "llama-3.1-8b", "--gpu", "L4")
    assert code == 1 and "estimated maximum model length is" in out


def test_prefix_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "prefix",
        "--prefix-tokens",
        "4096",
        "--users",
        "1000",
        "--suffix-tokens",
        "50",
        "--block-size",
        "16",
    )
    assert code == 0 and "260,000 blocks" in out and "4,256 blocks" in out and "61.09x" in out
    code, out, _ = run(
        capsys,
        "prefix",
        "--prefix-tokens",
        "4096",
        "--users",
        "1000",
        "--suffix-tokens",
        "50",
        "llama-3.1-8b",
        "--gpu",
        "H100",
        "--json",
    )
    data = json.loads(out)
    assert data["bytes_without"] == 260_000 * 2 * 2**20 and data["users_that_fit_with"] > 1000


def test_inverse_subcommands(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(
        capsys,
        "inverse",
        "utilization",
        "llama-3.1-8b",
        "--gpu",
        "H100",
        "--target-concurrency",
        "32",
        "--context-len",
        "8192",
        "--json",
    )
    data = json.loads(out)
    assert code == 0 and data["feasible"] and 0 < data["answer"] <= 1
    code, out, _ = run(capsys, "inverse", "max-model-len", "llama-3.1-8b", "--gpu", "L4")
    assert code == 0 and "max_model_len:" in out
    code, _, err = run(capsys, "inverse", "tp", "llama-3.1-8b", "--gpu", "H100")
    assert code == 2 and "--target-concurrency" in err


def test_catalog_listings(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "models", "--json")
    assert code == 0 and len(json.loads(out)["models"]) >= 30
    code, out, _ = run(capsys, "gpus")
    assert code == 0 and "MI300X" in out


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["llama-3.1-8b", "--gpu", "H1000"], "did you mean H100"),
        (["llama-3.1-8b", "--gpu", "H100", "--gpu-memory-utilization", "1.5"], "(0, 1]"),
        (["llama-3.1-8b", "--gpu", "H100", "--gpu-memory-utilization", "0"], "(0, 1]"),
        (["llama-3.1-8b", "--gpu", "H100", "--max-model-len", "-5"], "max_model_len"),
        (["llama-3.1-8b", "--gpu", "H100", "--block-size", "0"], "block_size"),
        (["llama-3.1-8b", "--gpu", "H100", "--block-size", "7"], "multiple of 16"),
        (["llama-3.1-8b", "--gpu", "H100", "--block-size", "24", "--vllm-version", "0.6.4"], "8"),
        (["llama-3.1-8b", "--gpu", "H100", "--vllm-version", "9.9"], "vllm_version"),
        (["llama-3.1-8b", "--gpu", "H100", "--speculative-config", "{x"], "not JSON"),
        (["llama-3.1-8b", "--gpu", "H100", "--speculative-config", '{"method": "x"}'], "method"),
        (
            ["llama-3.1-8b", "--gpu", "H100", "--engine", "sglang", "--mem-fraction-static", "2"],
            "(0, 1]",
        ),
        (["llama-3.1-8b", "--gpu", "H100", "-tp", "3"], "tensor_parallel_size=3"),
        (["llama-3.1-8b", "--gpu", "H100", "-pp", "64"], "pipeline_parallel_size=64"),
        ([str(DATA / "missing-heads.json"), "--gpu", "H100"], "num_attention_heads"),
        (["not-a-model", "--gpu", "H100"], "unknown model"),
        (["llama-3.1-8b"], "--gpu is required"),
        (["llama-3.1-8b", "--gpu", "H100", "--kv-cache-dtype", "int2"], "kv-cache-dtype"),
        (["llama-3.1-8b", "--gpu", "H100", "--max-model-len", "abc"], "invalid length"),
        (["prefix", "--prefix-tokens", "10", "--users", "0", "--suffix-tokens", "5"], "users"),
    ],
)
def test_bad_input_one_line_exit_2(
    capsys: pytest.CaptureFixture[str], argv: list[str], needle: str
) -> None:
    parse_time = needle in ("invalid length", "not JSON")  # argparse exits with status 2
    with pytest.raises(SystemExit) if parse_time else _no_raise():
        code = main(argv)
        assert code == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


class _no_raise:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


def test_argparse_errors_are_one_line_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["llama-3.1-8b", "--gpu", "H100", "--max-model-len", "abc"])
    assert info.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_explain_log_is_a_subcommand() -> None:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert "explain-log" in sub.choices  # type: ignore[attr-defined]


def test_python_dash_m_and_console_script_entry() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "capacity_planner", "gpus", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and json.loads(proc.stdout)["gpus"]


def test_vllm_underscore_spellings(capsys: pytest.CaptureFixture[str]) -> None:
    dash = run(capsys, "llama-3.1-8b", "--gpu", "H100", "--tensor-parallel-size", "2", "--json")
    under = run(capsys, "llama-3.1-8b", "--gpu", "H100", "--tensor_parallel_size", "2", "--json")
    eq = run(capsys, "llama-3.1-8b", "--gpu=H100", "--tensor_parallel_size=2", "--json")
    assert dash[0] == under[0] == eq[0] == 0
    assert json.loads(dash[1])["kv_cache"] == json.loads(under[1])["kv_cache"]
    assert json.loads(eq[1])["settings"]["tensor_parallel_size"] == 2


def test_version_flag_and_dunder_version(capsys: pytest.CaptureFixture[str]) -> None:
    import capacity_planner

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    out, _ = capsys.readouterr()
    assert (
        exit_info.value.code == 0
        and out.strip() == f"capacity-planner {capacity_planner.__version__}"
    )
    from importlib.metadata import version

    assert capacity_planner.__version__ == version("capacity-planner")


def test_inverse_max_model_len_honours_the_target_concurrency(
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = ["inverse", "max-model-len", "llama-3.1-8b", "--gpu", "L4", "--json"]
    code1, out1, _ = run(capsys, *base)
    code8, out8, _ = run(capsys, *base, "--target-concurrency", "8")
    one, eight = json.loads(out1), json.loads(out8)
    assert code1 == code8 == 0
    assert eight["answer"] < one["answer"]
    assert eight["kv_cache"]["max_concurrency"] >= 8


def test_verdict_in_text_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "llama-3.1-70b", "--gpu", "L4")
    assert code == 1 and "Will it start? no (load)" in out and "weights do not fit" in out
    code, out, _ = run(capsys, "llama-3.1-8b", "--gpu", "H100", "--max-model-len", "8k", "--json")
    verdict = json.loads(out)["verdict"]
    assert code == 0 and verdict["starts"] and verdict["stage"] == "ok"


def test_speculative_config_adds_draft_weights_and_a_kv_layer(
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = ["llama-3.1-8b", "--gpu", "H100", "--max-model-len", "8k", "--json"]
    plain = json.loads(run(capsys, *base)[1])
    spec = json.loads(
        run(
            capsys,
            *base,
            "--speculative-config",
            '{"method": "eagle3", "num_speculative_tokens": 3}',
        )[1]
    )
    assert spec["kv_cache"]["groups"][0]["layers"] == plain["kv_cache"]["groups"][0]["layers"] + 1
    assert spec["ranks"][0]["weights_bytes"] > plain["ranks"][0]["weights_bytes"]


def test_sglang_engine(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "llama-3.1-8b", "--gpu", "H100", "--engine", "sglang")
    assert code == 0 and "KV Cache is allocated. dtype: torch.bfloat16, #tokens: " in out
    code, out, _ = run(capsys, "llama-3.1-8b", "--gpu", "H100", "--engine", "sglang", "--json")
    data = json.loads(out)
    assert data["engine"] == "sglang" and data["max_total_num_tokens"] > 0


def test_no_traceback_even_on_an_internal_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import capacity_planner._commands as commands

    def boom(*_: object, **__: object) -> None:
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(commands, "plan", boom)
    code, out, err = run(capsys, "llama-3.1-8b", "--gpu", "H100")
    assert code == 4 and "internal error" in err and "Traceback" not in err + out
