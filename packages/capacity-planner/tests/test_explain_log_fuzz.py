"""Property tests: any text is explained without an exception; generated logs check out."""

from __future__ import annotations

import json
import math
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capacity_planner.explain import explain_log
from capacity_planner.explain.types import STATUSES

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

DOCS = Path(__file__).resolve().parents[1] / "docs" / "logs"
DATA = Path(__file__).resolve().parent / "data" / "logs"
# Every line of the shipped real and synthetic logs: the material noise is added to.
REAL_LINES = sorted(
    {
        line
        for path in [*DOCS.glob("*.log"), *DATA.glob("*.log")]
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip()
    }
)
NOISE = st.sampled_from(
    ["\x1b[1;36m", "[0;0m", "│ ", "vllm-1  | ", "(Worker_TP3 pid=9) ", "\r", "\t", ""]
)


def _roundtrip(text: str) -> None:
    exp = explain_log(text)
    data = json.loads(json.dumps(exp.to_dict()))
    assert len(data["runs"]) == len(exp.runs)
    for run in exp.runs:
        assert all(check.status in STATUSES for check in run.checks)


@FAST
@given(st.text(max_size=2000))
def test_arbitrary_text_never_raises(text: str) -> None:
    _roundtrip(text)


@FAST
@given(st.lists(st.tuples(st.sampled_from(REAL_LINES), NOISE, st.integers(0, 400)), max_size=25))
def test_real_lines_with_noise_and_cuts_never_raise(parts: list[tuple[str, str, int]]) -> None:
    _roundtrip("\n".join(noise + line[:cut] for line, noise, cut in parts))


@FAST
@given(
    blocks=st.integers(1, 2_000_000),
    block_size=st.sampled_from([8, 16, 32]),
    max_len=st.integers(1, 1_000_000),
    newer=st.booleans(),
)
def test_generated_consistent_logs_are_consistent(
    blocks: int, block_size: int, max_len: int, newer: bool
) -> None:
    tokens = blocks * block_size
    value = blocks / math.ceil(max_len / block_size) if newer else tokens / max_len
    text = (
        f"INFO [utils.py:1] non-default args: {{'block_size': {block_size}, "
        f"'max_model_len': {max_len}}}\n"
        f"INFO [kv_cache_utils.py:1] GPU KV cache size: {tokens:,} tokens\n"
        f"INFO [kv_cache_utils.py:2] Maximum concurrency for {max_len:,} tokens per request: "
        f"{value:.2f}x\n"
    )
    exp = explain_log(text)
    (run,) = exp.runs
    check = run.check("maximum concurrency")
    assert check is not None and check.status == "consistent", check
    assert exp.consistent


@FAST
@given(blocks=st.integers(1, 500_000), max_len=st.integers(16, 200_000))
def test_off_by_a_cent_concurrency_is_caught(blocks: int, max_len: int) -> None:
    exact = blocks * 16 / max_len
    wrong = round(exact, 2) + 0.01
    # Guard against the rare value the other formula prints.
    other = blocks / math.ceil(max_len / 16)
    if f"{other:.2f}" == f"{wrong:.2f}":
        return
    text = (
        f"# GPU blocks: {blocks}, # CPU blocks: 1\n"
        f"Maximum concurrency for {max_len} tokens per request: {wrong:.2f}x\n"
    )
    check = explain_log(text).runs[0].check("maximum concurrency")
    assert check is not None and check.status == "inconsistent"


MODELS = [
    "meta-llama/Llama-3.1-8B-Instruct",
    "Qwen/Qwen3-14B",
    "openai/gpt-oss-20b",
    "deepseek-ai/DeepSeek-V2-Lite-Chat",
    "google/gemma-2-9b-it",
    "Qwen/Qwen3-Next-80B-A3B-Instruct",
    "not/in-the-catalog",
]


@settings(max_examples=60, deadline=None)
@given(
    model=st.sampled_from(MODELS),
    tp=st.integers(0, 12),
    block_size=st.sampled_from([0, 1, 16, 32, 544, 4096]),
    kv_dtype=st.sampled_from(["auto", "fp8", "fp8_e5m2", "bogus"]),
    available=st.floats(-50, 2000, allow_nan=False),
    tokens=st.integers(0, 10**9),
    max_len=st.integers(0, 10**7),
    digits=st.integers(1, 500),
)
def test_settings_from_the_log_never_crash_the_model_checks(
    model: str,
    tp: int,
    block_size: int,
    kv_dtype: str,
    available: float,
    tokens: int,
    max_len: int,
    digits: int,
) -> None:
    text = (
        f"Initializing a V1 LLM engine (v0.9.1) with config: model='{model}', "
        f"max_seq_len={max_len}, tensor_parallel_size={tp}, kv_cache_dtype={kv_dtype}\n"
        f"non-default args: {{'block_size': {block_size}}}\n"
        f"Available KV cache memory: {available:.2f} GiB\n"
        f"GPU KV cache size: {tokens:,} tokens\n"
        f"# GPU blocks: {'9' * digits}\n"
        f"Maximum concurrency for {max_len:,} tokens per request: 1.00x\n"
        f"To serve at least one request with the models's max seq len ({max_len}), "
        f"(1.00 GiB KV cache is needed, which is larger than the available KV cache memory "
        f"({available:.2f} GiB). Based on the available memory, the estimated maximum model "
        f"length is {max_len // 2}.\n"
    )
    _roundtrip(text)
