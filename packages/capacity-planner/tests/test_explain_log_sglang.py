"""explain-log on SGLang's hybrid sliding-window pool: the split, each pool's line, the total.

Two real logs quoted in public pull requests (MiMo-V2-Flash, TP 4, shipped in docs/logs/)
and, for the checks that need a model the planner knows, lines produced by the planner's
own SGLang mode (`SGLangPlan.log_lines()`; constructed, not a real log: no public log of
a catalog model's hybrid pool was found).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from capacity_planner import ModelSpec, gpu_from_name
from capacity_planner.errors import CapacityPlannerError, SettingError
from capacity_planner.explain import RunReport, explain_log, main, parse_log
from capacity_planner.explain.patterns import Value
from capacity_planner.sglang import sglang_plan

LOGS = Path(__file__).resolve().parents[1] / "docs" / "logs"
# sgl-project/sglang PR #18039 (the "main branch" log of its description).
PR_18039 = (LOGS / "sglang-pr-18039-mimo-v2-flash-tp4-swa-split.log").read_text()
# sgl-project/sglang PR #15464 (the pool lines of its description).
PR_15464 = (LOGS / "sglang-pr-15464-mimo-v2-flash-tp4-swa-pools.log").read_text()

# XiaomiMiMo/MiMo-V2-Flash config.json: K head 192, V head 128; full layers 4 KV heads,
# SWA layers 8; 9 full + 39 SWA layers. Per rank at TP 4, bf16, K bytes per token:
MIMO_SWA_K = 8 // 4 * 192 * 39 * 2  # 29,952
MIMO_FULL_K = 4 // 4 * 192 * 9 * 2  # 3,456

GPT_OSS = ModelSpec.from_name("openai/gpt-oss-120b")
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _only_run(text: str, **kw: object) -> RunReport:
    exp = explain_log(text, **kw)  # type: ignore[arg-type]
    assert len(exp.runs) == 1
    return exp.runs[0]


def _check(run: RunReport, name: str) -> tuple[str, str | None, str | None]:
    check = run.check(name)
    assert check is not None, [c.name for c in run.checks]
    return check.status, check.expected, check.note


def _per_token(expected: str | None) -> tuple[float, float]:
    match = re.match(r"([\d,]+) \+- ([\d,]+) B", expected or "")
    assert match is not None, expected
    return float(match.group(1).replace(",", "")), float(match.group(2).replace(",", ""))


def test_real_split_log_of_pr_18039_is_retold_and_consistent() -> None:
    run = _only_run(PR_18039)
    assert run.engine == "SGLang" and run.consistent
    assert run.setting("page_size").value == 64  # type: ignore[union-attr]  # from --page-size
    assert run.setting("tensor_parallel_size").value == 4  # type: ignore[union-attr]
    status, expected, _ = _check(run, "SGLang SWA split")
    assert status == "consistent" and expected == "300,288"  # int(375,360 x 0.8), page 64
    status, expected, note = _check(run, "SGLang SWA pool #tokens")
    value, spread = _per_token(expected)
    assert status == "derived" and abs(value - MIMO_SWA_K) <= spread  # MiMo's real shape
    assert note is not None and "V (5.59 GB) differs from K (8.38 GB)" in note
    # the excerpt holds no full-pool line: said, not guessed
    assert _check(run, "SGLang pool line")[0] == "unchecked"
    assert "numbers not read: 8" in explain_log(PR_18039).notes[0]  # TP3's cut line


def test_real_split_log_with_another_ratio_is_a_mismatch_naming_it() -> None:
    run = _only_run(PR_18039, overrides={"swa_full_tokens_ratio": 0.5})
    status, expected, note = _check(run, "SGLang SWA split")
    assert status == "inconsistent" and expected == "187,648"
    assert note is not None and "0.800" in note and not run.consistent


def test_real_pool_log_of_pr_15464_split_one_to_one() -> None:
    # That release ignored --swa-full-tokens-ratio for MiMo-V2-Flash (fixed by sglang PR
    # #15488): both pools hold 1,496,958 tokens, not the default 0.8 split.
    run = _only_run(PR_15464)
    status, _, note = _check(run, "SGLang SWA split")
    assert status == "inconsistent" and note is not None and "1.000" in note
    fixed = _only_run(PR_15464, overrides={"swa_full_tokens_ratio": 1.0})
    assert fixed.consistent and _check(fixed, "SGLang SWA split")[0] == "consistent"
    # the SWAKVPool total is the four K and V sizes of one rank's two pool lines
    assert _check(fixed, "SGLang pools' memory")[:2] == ("consistent", "77.63 GB")
    swa = fixed.check("SGLang SWA pool #tokens")
    full = fixed.check("SGLang full pool #tokens")
    assert swa is not None and full is not None and swa.line == 1 and full.line == 3
    value, spread = _per_token(swa.expected)
    assert abs(value - MIMO_SWA_K) <= spread
    value, spread = _per_token(full.expected)
    assert abs(value - MIMO_FULL_K) <= spread


def _planner_lines(
    page: int = 64,
    ratio: float = 0.8,
    prefix: str = "",
    mem_fraction_static: float | None = None,
    disable_hybrid_swa_memory: bool = False,
) -> str:
    plan = sglang_plan(
        GPT_OSS,
        gpu_from_name("H200"),
        page_size=page,
        swa_full_tokens_ratio=ratio,
        mem_fraction_static=mem_fraction_static,
        disable_hybrid_swa_memory=disable_hybrid_swa_memory,
    )
    return "\n".join(prefix + line for line in plan.log_lines())


def test_planner_lines_are_consistent_with_the_model() -> None:
    """Lines from the planner's SGLang mode (constructed), checked against gpt-oss-120b."""
    text = _planner_lines(prefix="[2026-01-01 00:00:00 TP0] ")
    run = _only_run(text, model="openai/gpt-oss-120b", overrides={"page_size": 64})
    assert run.consistent
    assert [c.stage for c in run.checks] == ["profile", "split", "pools", "pools"]
    for name in ("SGLang SWA split", "SGLang SWA pool #tokens", "SGLang full pool #tokens"):
        assert _check(run, name)[0] == "consistent"
    # the scheduler's line (format of SGLang's `managers/scheduler.py`) restates the full pool
    full = re.search(r"full_layer_tokens=(\d+)", text)
    assert full is not None
    scheduler = (
        f"\n[2026-01-01 00:00:01 TP0] max_total_num_tokens={full.group(1)}, "
        "chunked_prefill_size=8192, max_prefill_tokens=16384, max_running_requests=4096, "
        "context_len=131072, available_gpu_mem=20.12 GB"
    )
    both = _only_run(text + scheduler, model="openai/gpt-oss-120b", overrides={"page_size": 64})
    assert both.consistent and _check(both, "SGLang max_total_num_tokens")[0] == "consistent"
    status, expected, _ = _check(both, "SGLang full-length requests")
    assert status == "derived" and expected == f"{int(full.group(1)) / 131072:.2f}x"
    other = _only_run(text + scheduler.replace(full.group(1), "1234"), model="openai/gpt-oss-120b")
    assert _check(other, "SGLang max_total_num_tokens")[0] == "inconsistent"


@pytest.mark.parametrize("tp", [2, 4])
def test_wrong_tp_is_found_in_both_pools(tp: int) -> None:
    """Planner-made lines (constructed) read with TP 2 or 4 where the pools were sized for TP 1."""
    run = _only_run(
        _planner_lines(),
        model="openai/gpt-oss-120b",
        overrides={"page_size": 64, "tensor_parallel_size": tp},
    )
    for name in ("SGLang SWA pool #tokens", "SGLang full pool #tokens"):
        status, _, note = _check(run, name)
        assert status == "inconsistent" and note is not None
        assert f"off by {tp}x: the log's TP size is {tp}x smaller" in note


def test_a_model_without_sliding_layers_is_not_checked_against_a_split() -> None:
    """Planner-made hybrid lines (constructed) explained with a dense model."""
    run = _only_run(_planner_lines(), model="meta-llama/Llama-3.1-8B-Instruct")
    status, _, note = _check(run, "SGLang pools")
    assert status == "unchecked" and note is not None and "no sliding-window" in note


def test_one_pool_when_hybrid_memory_is_disabled_and_the_older_line() -> None:
    """Planner-made single-pool line (constructed); older SGLang prints no "dtype:"."""
    text = _planner_lines(disable_hybrid_swa_memory=True)
    assert "Use sliding window" not in text
    run = _only_run(text, model="openai/gpt-oss-120b")
    assert _check(run, "SGLang K size")[0] == "consistent"
    older = re.sub(r"dtype: [\w.]+, ", "", text)
    assert _check(_only_run(older, model="openai/gpt-oss-120b"), "SGLang K size")[0] == (
        "consistent"
    )


@FAST
@given(
    ratio=st.floats(0.05, 1.0),
    page=st.sampled_from([1, 16, 64]),
    fraction=st.floats(0.86, 0.95),
)
def test_every_planner_split_checks_out(ratio: float, page: int, fraction: float) -> None:
    """Whatever ratio, page and fraction, the planner's own lines (constructed) agree."""
    text = _planner_lines(page=page, ratio=ratio, mem_fraction_static=fraction)
    run = _only_run(
        text,
        model="openai/gpt-oss-120b",
        overrides={"page_size": page, "swa_full_tokens_ratio": ratio},
    )
    assert run.consistent, [(c.name, c.expected, c.logged) for c in run.checks]


def test_two_pool_lines_of_one_rank_are_one_start_up_and_server_args_opens_another() -> None:
    one = PR_15464
    assert len(parse_log(one).runs) == 1
    banner = "[2026-01-01 00:00:00] server_args=ServerArgs(model_path='x', page_size=16)\n"
    two = banner + _planner_lines(page=16) + "\n" + banner + _planner_lines(page=16, ratio=0.5)
    runs = explain_log(two).runs
    assert len(runs) == 2 and all(r.engine == "SGLang" for r in runs)
    page = runs[1].setting("page_size")
    assert page is not None and page.value == 16 and page.origin.startswith("line")
    assert runs[0].consistent  # the default ratio
    status, _, note = _check(runs[1], "SGLang SWA split")  # 0.5, not in the banner
    assert status == "inconsistent" and note is not None and "0.500" in note


@pytest.mark.parametrize(
    ("overrides", "name"),
    [({"page_size": 0}, "page_size"), ({"swa_full_tokens_ratio": 1.5}, "swa_full_tokens_ratio")],
)
def test_bad_sglang_overrides_are_refused_by_name(overrides: dict[str, float], name: str) -> None:
    with pytest.raises(SettingError, match=name):
        explain_log(PR_18039, overrides=overrides)  # type: ignore[arg-type]


def test_cli_reads_the_real_log_and_refuses_a_bad_ratio(
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = str(LOGS / "sglang-pr-15464-mimo-v2-flash-tp4-swa-pools.log")
    assert main([path]) == 1  # the 1:1 split is not SGLang's default
    assert main([path, "--swa-full-tokens-ratio", "1"]) == 0
    out = capsys.readouterr().out
    assert "2. split" in out and "SGLang SWA split" in out
    with pytest.raises(SystemExit) as exc:
        main([path, "--swa-full-tokens-ratio", "2"])
    assert exc.value.code == 2 and "swa-full-tokens-ratio" in capsys.readouterr().err


def test_all_sliding_window_pool_and_sglang_prefixes() -> None:
    """Lines in the format of SGLang's `pool_configurator.py` (constructed, not a real log)."""
    text = (
        "[2026-02-01 10:00:00 DP0 TP1] Use sliding window memory pool (all SWA). "
        "swa_layer_tokens=100000\n"
        "[2026-02-01 10:00:00 DP0 TP1] KV Cache is allocated. #tokens: 100000, "
        "K size: 1.00 GB, V size: 1.00 GB\n"
    )
    (line, _) = parse_log(text).runs[0].facts[:2]
    assert line.source == "DP0 TP1" and line.rank == 1
    run = _only_run(text)
    assert run.engine == "SGLang" and run.check("SGLang SWA split") is None
    status, expected, _ = _check(run, "SGLang SWA pool #tokens")
    value, spread = _per_token(expected)
    assert status == "derived" and abs(value - (1 << 30) / 100_001) <= spread


SERVER_ARGS = (
    "[2026-02-01 10:00:00] server_args=ServerArgs(model_path='openai/gpt-oss-120b', "
    "tp_size=1, page_size=64, swa_full_tokens_ratio=0.8, mem_fraction_static=0.85)"
)
SGLANG_LINES = [
    SERVER_ARGS,
    "python3 -m sglang.launch_server --page-size 16 --swa-full-tokens-ratio 0.25",
    "Use sliding window memory pool (all SWA). swa_layer_tokens=4096",
    "[2026-02-01 10:00:01 TP0] max_total_num_tokens=799232, chunked_prefill_size=8192, "
    "max_prefill_tokens=16384, max_running_requests=4096, context_len=131072, "
    "available_gpu_mem=20.12 GB",
    *(
        line
        for text in (
            PR_18039,
            PR_15464,
            _planner_lines(),
            _planner_lines(disable_hybrid_swa_memory=True),
        )
        for line in text.splitlines()
    ),
]


@st.composite
def _garbled(draw: st.DrawFn) -> str:
    lines = draw(st.lists(st.sampled_from(SGLANG_LINES), min_size=1, max_size=12))
    out = []
    for line in lines:
        chars = list(line[: draw(st.integers(0, len(line)))])
        for _ in range(draw(st.integers(0, 4))):
            if chars:
                at = draw(st.integers(0, len(chars) - 1))
                chars[at] = draw(st.sampled_from("0123456789-.,=:x( )\x1b[GBTP"))
        out.append("".join(chars) + draw(st.sampled_from(["", "9" * 30, " GB", ", K size"])))
    return "\n".join(out)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=_garbled(),
    model=st.sampled_from([None, "openai/gpt-oss-120b", "meta-llama/Llama-3.1-8B-Instruct"]),
    tp=st.sampled_from([None, 1, 2, 3, 8]),
    page=st.sampled_from([None, 1, 64]),
)
def test_garbled_sglang_lines_raise_only_the_packages_errors(
    text: str, model: str | None, tp: int | None, page: int | None
) -> None:
    overrides: dict[str, Value | None] = {"tensor_parallel_size": tp, "page_size": page}
    try:
        exp = explain_log(text, model=model, overrides=overrides)
    except CapacityPlannerError:
        return
    exp.to_dict()
    for run in exp.runs:
        for check in run.checks:
            assert check.status in ("consistent", "inconsistent", "derived", "unchecked", "logged")
