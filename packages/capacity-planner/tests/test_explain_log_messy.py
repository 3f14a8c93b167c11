"""Messy logs: colour codes, prefixes, interleaved ranks, cut lines, mixed versions, junk."""

from __future__ import annotations

from pathlib import Path

from capacity_planner.explain import explain_log
from capacity_planner.explain.clean import clean_line, split_top_level

DATA = Path(__file__).resolve().parent / "data" / "logs"
V1_TP2 = (DATA / "v1-tp2-ranks.synthetic.log").read_text(encoding="utf-8")


def test_colour_codes_and_lost_escape_bytes_are_stripped() -> None:
    body = " INFO 01-01 [x.py:1] GPU KV cache size: 1,024 tokens"
    raw = "\x1b[1;36m(VllmWorker rank=1 pid=7)\x1b[0;0m" + body
    lost = "[1;36m(VllmWorker rank=1 pid=7)[0;0m" + body
    for text in (raw, lost):
        line = clean_line(3, text)
        assert "\x1b" not in line.text and "[1;36m" not in line.text
        assert line.source == "VllmWorker rank=1 pid=7" and line.rank == 1
        exp = explain_log(text)
        fact = exp.runs[0].check("GPU blocks from tokens")
        assert fact is not None and fact.expected == "64"


def test_file_names_in_brackets_survive_cleaning() -> None:
    assert "[gpu_worker.py:298]" in clean_line(1, "INFO [gpu_worker.py:298] x").text


def test_docker_and_iso_timestamp_prefixes() -> None:
    text = (
        "vllm-1  | 2025-01-02T03:04:05.678Z INFO 01-02 03:04:05 gpu_executor.py:1] "
        "# GPU blocks: 1952, # CPU blocks: 2048\n"
        "vllm-1  | 2025-01-02 03:04:05,679 INFO gpu_executor.py:2] "
        "Maximum concurrency for 20000 tokens per request: 1.56x\r\n"
    )
    run = explain_log(text).runs[0]
    check = run.check("maximum concurrency")
    assert check is not None and check.status == "consistent"


def test_tensor_parallel_ranks_minimum_over_ranks_and_tp_inferred() -> None:
    exp = explain_log(V1_TP2, model="Qwen/Qwen3-14B")
    (run,) = exp.runs
    tp = run.setting("tensor_parallel_size")
    assert tp is not None and tp.value == 2
    assert any("minimum, 19.50 GiB" in note for note in run.notes)
    blocks = run.check("GPU blocks")
    # 19.50 GiB / (1.25 MiB per block per rank) = 15,974 blocks = 255,584 tokens.
    assert blocks is not None and blocks.status == "consistent", blocks
    assert run.check("maximum concurrency").status == "consistent"  # type: ignore[union-attr]
    assert set(run.processes) >= {"VllmWorker rank=0 pid=11", "VllmWorker rank=1 pid=12"}


def test_unprefixed_repeated_rank_lines_are_duplicates_not_new_runs() -> None:
    line = (
        "INFO worker.py:1] model weights take 21.21GiB; non_torch_memory takes 0.20GiB; "
        "PyTorch activation peak memory takes 0.37GiB; the rest of the memory reserved for KV "
        "Cache is 1.57GiB."
    )
    exp = explain_log("\n".join([line] * 4))
    assert len(exp.runs) == 1
    assert any("repeated" in note for note in exp.notes)


def test_truncated_lines_are_reported_not_guessed() -> None:
    text = (
        "INFO x] # GPU blocks: 1952, # CPU\n"
        "INFO x] GPU KV cache size: 12,3\n"
        "INFO x] Maximum concurrency for 20000 tokens per request: 1.5\n"
    )
    exp = explain_log(text)
    notes = " ".join(exp.notes)
    assert "lines cut short" in notes and "2" in notes and "3" in notes
    # Line 1 still yields its complete part, the GPU block count.
    assert exp.runs and exp.runs[0].check("maximum concurrency") is None


def test_several_engine_versions_in_one_file() -> None:
    v0 = (
        "INFO 07-24 12:00:00 llm_engine.py:1] Initializing an LLM engine (v0.5.3) with config: "
        "model='meta-llama/Llama-2-7b-hf', dtype=torch.float16, max_seq_len=4096, "
        "tensor_parallel_size=1, kv_cache_dtype=auto, enforce_eager=False\n"
        "INFO 07-24 12:00:10 gpu_executor.py:1] # GPU blocks: 7191, # CPU blocks: 512\n"
    )
    v1 = (
        "INFO 04-06 18:44:06 [core.py:61] Initializing a V1 LLM engine (v0.8.3) with config: "
        "model='Qwen/Qwen2.5-0.5B-Instruct-AWQ', dtype=torch.float16, max_seq_len=512, "
        "tensor_parallel_size=1, quantization=awq_marlin, enforce_eager=False, "
        "kv_cache_dtype=auto\n"
        "INFO 04-06 18:44:20 [kv_cache_utils.py:1] GPU KV cache size: 1,000,000 tokens\n"
        "INFO 04-06 18:44:20 [kv_cache_utils.py:2] Maximum concurrency for 512 tokens per "
        "request: 1953.12x\n"
    )
    exp = explain_log(v0 + v1)
    assert [r.engine for r in exp.runs] == ["V0", "V1"]
    assert [r.vllm_version for r in exp.runs] == ["0.5.3", "0.8.3"]
    first, second = exp.runs
    assert first.setting("max_model_len").value == 4096  # type: ignore[union-attr]
    assert first.setting("dtype").value == "float16"  # type: ignore[union-attr]
    assert first.setting("enforce_eager").value is False  # type: ignore[union-attr]
    assert second.setting("quantization").value == "awq_marlin"  # type: ignore[union-attr]
    assert second.check("maximum concurrency").status == "consistent"  # type: ignore[union-attr]


def test_namespace_dump_and_block_size_setting() -> None:
    text = (
        "INFO api_server.py:1] args: Namespace(host=None, model='m', block_size=32, "
        "swap_space=8, gpu_memory_utilization=0.85, max_model_len=4000, tensor_parallel_size=1)\n"
        "INFO gpu_executor.py:1] # GPU blocks: 1000, # CPU blocks: 512\n"
        "INFO gpu_executor.py:2] Maximum concurrency for 4000 tokens per request: 8.00x\n"
    )
    run = explain_log(text).runs[0]
    assert run.setting("block_size").value == 32  # type: ignore[union-attr]
    assert run.setting("swap_space").value == 8  # type: ignore[union-attr]
    assert run.check("maximum concurrency").status == "consistent"  # type: ignore[union-attr]


def test_concurrency_formula_of_another_version() -> None:
    # 1000 blocks, L = 1000: tokens/L = 16.00 (V0), blocks/cdiv(L,16) = 15.87 (newer V1).
    body = (
        "# GPU blocks: 1000, # CPU blocks: 1\n"
        "Maximum concurrency for 1000 tokens per request: 15.87x\n"
    )
    v0 = explain_log("Initializing an LLM engine (v0.6.3) with config: model='m'\n" + body)
    check = v0.runs[0].check("maximum concurrency")
    assert check is not None and check.status == "inconsistent"
    assert "another vLLM version's formula" in (check.note or "")
    v1 = explain_log(
        "GPU KV cache size: 16,000 tokens\n"
        "Maximum concurrency for 1,000 tokens per request: 15.87x\n"
    )
    check = v1.runs[0].check("maximum concurrency")
    assert check is not None and check.status == "consistent" and "newer V1" in (check.note or "")


def test_block_size_cause_and_hybrid_block_size() -> None:
    text = "# GPU blocks: 500\nMaximum concurrency for 1000 tokens per request: 16.00x\n"
    check = explain_log(text).runs[0].check("maximum concurrency")
    assert check is not None and "block_size 32 fits" in (check.note or "")
    hybrid = (
        "(Worker_TP0 pid=1) INFO [interface.py:645] Setting attention block size to 544 tokens "
        "to ensure that attention page size is >= mamba page size.\n"
        "GPU KV cache size: 5,440 tokens\n"
    )
    run = explain_log(hybrid).runs[0]
    assert run.setting("block_size").value == 544  # type: ignore[union-attr]
    assert any("hybrid" in note for note in run.notes)


def test_override_and_unknown_model_notes() -> None:
    text = (
        "Initializing a V1 LLM engine (v0.9.0) with config: model='acme/secret-model-7b'\n"
        "Available KV cache memory: 10.00 GiB\n"
        "Overriding num_gpu_blocks=5120 with num_gpu_blocks_override=100\n"
        "GPU KV cache size: 1,600 tokens\n"
    )
    run = explain_log(text).runs[0]
    assert any("unknown model 'acme/secret-model-7b'" in n for n in run.notes)
    forced = explain_log(text, model="llama-3.1-8b").runs[0].check("GPU blocks")
    assert forced is not None and forced.status == "inconsistent"
    assert "num_gpu_blocks_override" in (forced.note or "")


def test_junk_and_empty_inputs_give_a_clear_report() -> None:
    for text in ("", "\n\n", "hello world\nnothing to see", "\x00\x01\x02 binary \xff"):
        exp = explain_log(text)
        assert not exp.found_anything
        assert "no vLLM start-up lines found" in " ".join(exp.notes)


def test_partial_log_lists_what_is_missing() -> None:
    run = explain_log("INFO [gpu_worker.py:1] Available KV cache memory: 6.51 GiB\n").runs[0]
    assert "GPU blocks / KV cache size" in run.missing
    assert "maximum concurrency" in run.missing
    assert run.check("available KV memory").status == "unchecked"  # type: ignore[union-attr]


def test_split_top_level_respects_brackets_and_quotes() -> None:
    assert split_top_level("a=1, b=f(x, y), c='p,q', d={'k': [1, 2]}") == [
        "a=1",
        "b=f(x, y)",
        "c='p,q'",
        "d={'k': [1, 2]}",
    ]
    assert split_top_level("a=(1, 2") == ["a=(1, 2"]


def test_pathological_long_lines_do_not_break_the_parser() -> None:
    # Digit runs, unbalanced brackets and huge arg dumps: no exception, nothing invented.
    texts = [
        "1" * 100_000 + " GiB for weight",
        "non-default args: {" + "'a': (" * 5_000,
        "with config: " + "a=(" * 10_000,
        "Namespace(" + "x=1, " * 10_000,
    ]
    for text in texts:
        exp = explain_log(text)
        assert all(c.status != "inconsistent" for run in exp.runs for c in run.checks)
