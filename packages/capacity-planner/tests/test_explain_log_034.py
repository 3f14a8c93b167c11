"""explain-log on vLLM 0.34 start-ups: the post-warm-up sizing lines and the regime."""

from __future__ import annotations

from pathlib import Path

from capacity_planner.explain import explain_log
from capacity_planner.explain.parse import parse_log
from capacity_planner.explain.settings import detect_engine, planner_version

LOG = Path(__file__).parent / "data" / "logs" / "v0.34-llama3.1-8b-h100.synthetic.log"


def test_034_lines_are_read_and_recomputed() -> None:
    text = LOG.read_text()
    (run,) = explain_log(text, model="meta-llama/Llama-3.1-8B-Instruct").runs
    assert run.regime == "v1-extensible"
    names = {c.name: c for c in run.checks}
    assert names["kept for transient activations"].status == "consistent"
    assert names["KV cache bytes after warm-up"].status == "consistent"
    assert names["extended KV cache blocks"].status == "consistent"
    assert not [c for c in run.checks if c.status == "inconsistent"]


def test_an_extension_above_the_measured_blocks_is_flagged() -> None:
    text = LOG.read_text().replace("Extended KV cache to 7039", "Extended KV cache to 7100")
    (run,) = explain_log(text).runs
    bad = [c for c in run.checks if c.status == "inconsistent"]
    assert [c.name for c in bad] == ["extended KV cache blocks"]


def test_regimes_from_releases_and_lines() -> None:
    def regime(text: str) -> str:
        (run,) = parse_log(text).runs
        engine, _, version = detect_engine(run)
        return planner_version(run, engine, version)

    v1_line = "INFO [gpu_worker.py:1] Available KV cache memory: 10.00 GiB\n"
    assert regime("vLLM API server version 0.10.2\nGPU KV cache size: 1,024 tokens\n") == "v1"
    assert regime("vLLM API server version 0.20.1\nGPU KV cache size: 1,024 tokens\n") == (
        "v1-graphs"
    )
    assert regime("vLLM API server version 0.25.0\nGPU KV cache size: 1,024 tokens\n") == (
        "v1-2026"
    )
    one_line = (
        "GPU KV cache size: 32,768 tokens, "
        "Maximum concurrency for 8,192 tokens per request: 4.00x\n"
    )
    assert regime(v1_line + one_line) == "v1-2026"
    graphs = "INFO CUDA graph memory profiling is enabled (default since v0.21.0). ...\n"
    assert regime(v1_line + graphs + "GPU KV cache size: 1,024 tokens\n") == "v1-graphs"
