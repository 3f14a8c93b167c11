"""explain-log on each vLLM log format, on the real logs shipped in docs/logs/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from capacity_planner.explain import LogExplanation, RunReport, explain_log

DOCS = Path(__file__).resolve().parents[1] / "docs" / "logs"


def _explain(name: str, **kwargs: object) -> LogExplanation:
    return explain_log((DOCS / name).read_text(encoding="utf-8"), source=name, **kwargs)  # type: ignore[arg-type]


def _status(run: RunReport, name: str) -> str:
    check = run.check(name)
    assert check is not None, f"no check {name!r} in {[c.name for c in run.checks]}"
    return check.status


def test_v064_one_line_profile_three_startups_issue_10517() -> None:
    exp = _explain("v0.6.4-issue-10517-llama3.1-8b-rtx3090.log")
    assert len(exp.runs) == 3
    first, second, third = exp.runs
    assert first.engine == second.engine == "V0"
    assert _status(first, "available KV memory") == "consistent"
    assert _status(first, "CPU vs GPU block size") == "consistent"
    assert _status(first, "maximum concurrency") == "consistent"
    assert first.setting("max_model_len").value == 20000  # type: ignore[union-attr]
    assert _status(second, "V0 start-up error: KV tokens") == "consistent"
    # The third start-up is cut mid-line in the quote: reported, never guessed.
    assert "lines cut short" in " ".join(exp.notes)
    assert "available KV cache memory" in third.missing
    assert exp.consistent


def test_issue_10517_with_model_checks_blocks_and_cpu_pool() -> None:
    exp = _explain("v0.6.4-issue-10517-llama3.1-8b-rtx3090.log", model="llama-3.1-8b")
    run = exp.runs[0]
    blocks = run.check("GPU blocks")
    assert blocks is not None and blocks.status == "consistent"
    assert blocks.logged == "1,952"
    assert _status(run, "CPU blocks") == "consistent"
    page = run.check("page size")
    assert page is not None and "2,097,152 B per block" in (page.expected or "")


def test_v0_the_current_instance_format_and_cuda_blocks() -> None:
    run = _explain("v0.8-gie-pr-550-cuda-blocks-h100-k9s.log").runs[0]
    assert run.engine == "V0"
    assert _status(run, "memory budget") == "consistent"
    assert _status(run, "available KV memory") == "consistent"
    assert _status(run, "CPU vs GPU block size") == "consistent"
    implied = run.check("bytes per block (implied)")
    assert implied is not None and "8,19" in (implied.expected or "")  # ~8 MiB: a 7B MHA model


def test_v065_multi_line_profile_table_two_startups() -> None:
    exp = _explain("v0.6.5-pr-10511-llama3-8b-h100.log")
    assert len(exp.runs) == 2
    assert _status(exp.runs[0], "available KV memory") == "consistent"
    derived = exp.runs[1].check("available KV memory")
    assert derived is not None and derived.status == "derived"
    assert derived.expected == "58.970 GiB"


def test_v0_interleaved_worker_processes() -> None:
    run = _explain("v0.8-pr-14447-tp-rtx3090-interleaved.log").runs[0]
    assert len(run.processes) == 4
    assert _status(run, "available KV memory") == "consistent"
    assert any("worker processes" in note for note in run.notes)


def test_v1_early_blocks_line_and_token_line_from_pr_13596() -> None:
    exp = _explain("v1-v0.7-pr-13596-before-after.log")
    (run,) = exp.runs
    assert run.engine == "V1"
    assert _status(run, "GPU KV cache size") == "consistent"
    assert _status(run, "maximum concurrency") == "consistent"
    assert any("two vLLM versions" in note for note in run.notes)


def test_early_v1_blocks_line_pr_12569() -> None:
    run = _explain(
        "v1-v0.7.1-pr-12569-llama3.1-70b-w8a8.log", model="meta-llama/Llama-3.1-70B-Instruct"
    ).runs[0]
    assert run.engine == "V1"
    assert _status(run, "maximum concurrency") == "consistent"
    pool = run.check("KV memory of the blocks")
    assert pool is not None and pool.expected == "6.74 GiB"  # 1,381 x 5 MiB


def test_v1_tokens_only_log_with_model_lmcache_1739() -> None:
    run = _explain("v1-lmcache-1739-qwen3-14b.log", model="Qwen/Qwen3-14B").runs[0]
    assert run.processes == ("EngineCore_DP0 pid=1133552",)
    blocks = run.check("GPU blocks")
    assert blocks is not None and blocks.status == "consistent"
    assert _status(run, "maximum concurrency") == "consistent"


def test_v1_tp4_one_rank_line_issue_21348() -> None:
    exp = _explain(
        "v1-issue-21348-qwen3-235b-fp8-tp4.log",
        model="Qwen/Qwen3-235B-A22B-FP8",
        overrides={"tensor_parallel_size": 4},
    )
    blocks = exp.runs[0].check("GPU blocks")
    assert blocks is not None and blocks.status == "inconsistent"
    assert "one rank's line" in (blocks.note or "")
    assert not exp.consistent


def test_v1_negative_available_memory_issue_23278() -> None:
    run = _explain("v1-issue-23278-gpt-oss-120b-h100-negative.log").runs[0]
    assert run.engine == "V1"
    assert any("No available memory" in note for note in run.notes)


def test_v1_error_estimated_max_len() -> None:
    run = _explain("v1-xinference-4926-estimated-max-len.log").runs[0]
    assert _status(run, "V1 start-up error: estimated max length") == "consistent"
    edited = (
        (DOCS / "v1-xinference-4926-estimated-max-len.log").read_text().replace("50512", "40000")
    )
    bad = explain_log(edited).runs[0].check("V1 start-up error: estimated max length")
    assert bad is not None and bad.status == "inconsistent"


def test_v0_error_under_tp_gives_smallest_rank_memory_issue_13061() -> None:
    run = _explain(
        "v0-issue-13061-tp2-rtx4090-error.log",
        model="deepseek-ai/DeepSeek-R1-Distill-Qwen-14B",
        overrides={"tensor_parallel_size": 2},
    ).runs[0]
    smallest = run.check("KV memory of the smallest rank")
    assert smallest is not None and smallest.expected == "7.46 GiB"


def test_seed_as_quoted_is_inconsistent_and_says_why() -> None:
    exp = _explain("phase02-lab03-as-quoted.constructed.log")
    check = exp.runs[0].check("maximum concurrency")
    assert check is not None and check.status == "inconsistent"
    assert "68.66x" in (check.note or "") and "truncated" in (check.note or "")


def test_seed_vllm_reading_is_consistent() -> None:
    exp = _explain("phase02-lab03-llama3.1-8b.constructed.log")
    assert exp.consistent
    assert _status(exp.runs[0], "maximum concurrency") == "consistent"


@pytest.mark.parametrize("path", sorted(DOCS.glob("*.log")), ids=lambda p: p.name)
def test_every_shipped_log_explains_and_serialises(path: Path) -> None:
    exp = explain_log(path.read_text(encoding="utf-8"), source=path.name)
    assert exp.found_anything
    data = json.loads(json.dumps(exp.to_dict()))
    assert data["source"] == path.name
    assert len(data["runs"]) == len(exp.runs)


def test_v1_error_needed_memory_uses_the_planner_for_sliding_window_models() -> None:
    # Issue #27508's numbers (gpt-oss-120b on one H100, --max-num-batched-tokens 1024):
    # 4.54 GiB needed = 18 x 32 KiB x (8192 full-attention + 73 sliding-window) blocks.
    text = (
        "(EngineCore_DP0 pid=6880) INFO [gpu_worker.py:298] Available KV cache memory: 1.71 GiB\n"
        "ValueError: To serve at least one request with the models's max seq len (131072), "
        "(4.54 GiB KV cache is needed, which is larger than the available KV cache memory "
        "(1.71 GiB).\n"
    )
    run = explain_log(
        text, model="openai/gpt-oss-120b", overrides={"max_num_batched_tokens": 1024}
    ).runs[0]
    assert _status(run, "V1 start-up error: available") == "consistent"
    assert _status(run, "V1 start-up error: KV needed") == "consistent"
    default = explain_log(text, model="openai/gpt-oss-120b").runs[0]
    assert _status(default, "V1 start-up error: KV needed") == "inconsistent"


def test_overrides_are_validated() -> None:
    with pytest.raises(ValueError, match="unknown keys"):
        explain_log("", overrides={"blocksize": 16})
    with pytest.raises(TypeError, match="text must be a str"):
        explain_log(b"# GPU blocks: 1")  # type: ignore[arg-type]


@pytest.mark.parametrize("version", ["v0", "v1-0.8", "v1", "v1-2026", "v1-extensible"])
def test_round_trip_against_the_planner_for_every_catalog_model(version: str) -> None:
    """What the planner says vLLM prints, explain-log must find consistent (and vice versa)."""
    from capacity_planner import GiB, ModelSpec, catalog_names, compute_kv_cache_config

    banner = {
        "v0": "Initializing an LLM engine (v0.6.3) with config: ",
        "v1-0.8": "Initializing a V1 LLM engine (v0.8.3) with config: ",
        "v1": "Initializing a V1 LLM engine (v0.10.0) with config: ",
        "v1-2026": "Initializing a V1 LLM engine (v0.25.0) with config: ",
        "v1-extensible": "Initializing a V1 LLM engine (v0.34.0) with config: ",
    }[version]
    checked = 0
    for name in catalog_names():
        spec = ModelSpec.from_name(name)
        for max_len, tp in ((2048, 1), (8000, 2), (32768, 1)):
            try:
                cfg = compute_kv_cache_config(
                    spec,
                    int(37.3 * GiB),
                    max_model_len=max_len,
                    tensor_parallel_size=tp,
                    vllm_version=version,
                )
            except ValueError:
                continue  # e.g. a TP size the model's heads do not allow
            if not cfg.fits:
                continue
            text = (
                f"{banner}model='{name}', max_seq_len={max_len}, tensor_parallel_size={tp}\n"
                + "\n".join(cfg.log_lines())
                + "\n"
            )
            run = explain_log(text).runs[0]
            bad = [c for c in run.checks if c.status == "inconsistent"]
            assert not bad, (name, max_len, tp, cfg.log_lines(), bad)
            assert run.check("GPU blocks") is not None or version == "v0", (name, run.checks)
            checked += 1
    assert checked >= 30


def test_round_trip_of_034_plans_with_their_warmup_lines() -> None:
    """0.34 plans (warm-up and extension lines included) read back as consistent."""
    from capacity_planner import EngineSettings, ModelSpec, gpu_from_name, plan

    for name, gpu, tp in (
        ("meta-llama/Llama-3.1-8B-Instruct", "H100", 1),
        ("Qwen/Qwen3-32B", "A100-80GB", 2),
        ("meta-llama/Llama-3.1-70B-Instruct", "H200", 4),
    ):
        p = plan(
            ModelSpec.from_name(name),
            gpu_from_name(gpu),
            EngineSettings(max_model_len=16384, tensor_parallel_size=tp),
        )
        assert p.starts
        text = (
            "Initializing a V1 LLM engine (v0.34.0) with config: "
            f"model='{name}', max_seq_len=16384, tensor_parallel_size={tp}\n"
            + "\n".join(p.log_lines())
            + "\n"
        )
        (run,) = explain_log(text).runs
        assert run.regime == "v1-extensible"
        bad = [c for c in run.checks if c.status == "inconsistent"]
        assert not bad, (name, p.log_lines(), bad)
        assert run.check("extended KV cache blocks") is not None
