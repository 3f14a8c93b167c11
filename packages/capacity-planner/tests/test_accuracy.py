"""The planner against real vLLM start-ups from public issues, pull requests and repo files.

The records (`capacity_planner/records_data/vllm_startups.json`) carry the figures a log
printed and the text they were copied from. Exact checks: carving the logged available
memory, or the logged block count, reproduces the logged tokens, blocks, concurrency,
"KV cache is needed", estimated maximum length, V0 error length and `# CPU blocks`.
End to end (model + GPU + settings -> available KV memory): within 5%, or the record states
why not and the test asserts that the stated reason still holds. `docs/ACCURACY.md` and the
README summary must be what `python -m capacity_planner.records` prints.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capacity_planner import GiB, plan, resolve_gpu
from capacity_planner.accounting.startup import COLD_COMPILE_EXTRA, COLD_COMPILE_EXTRA_RANGE
from capacity_planner.records import (
    ISSUE_RECORDS,
    MISMATCH_KINDS,
    IssueRecord,
    Logged,
    Source,
    accuracy_summary,
    check_record,
    cold_warm_pairs,
    formula_for,
    load_records,
    markdown_table,
    summary_markdown,
)

BY_KEY = {r.key: r for r in ISSUE_RECORDS}
CHECKS = {r.key: check_record(r) for r in ISSUE_RECORDS}
PACKAGE = Path(__file__).resolve().parents[1]


def _ids(records: list[IssueRecord]) -> list[str]:
    return [r.key for r in records]


def test_at_least_thirty_records_each_with_a_public_source() -> None:
    assert len(ISSUE_RECORDS) >= 30
    for r in ISSUE_RECORDS:
        assert r.source.url.startswith(f"https://github.com/{r.source.repo}/")
        if r.source.kind == "file":
            # a file of a public repository, pinned to the commit it was read at
            assert r.source.path is not None and "/blob/" in r.source.url
            assert r.source.url.endswith(f"/{r.source.path}") and r.source.path in r.issue
        else:
            assert r.source.url.endswith(f"/{r.source.number}")
            assert r.issue.endswith(f"#{r.source.number}") and r.source.kind in ("issue", "PR")
        assert set(r.mismatch) <= set(MISMATCH_KINDS), r.key


def test_records_reach_the_newest_releases_found() -> None:
    # Public start-up logs of 0.30 and 0.31 were found (repository files); none of 0.32-0.34
    # (docs/ACCURACY.md says what was searched).
    releases = {tuple(int(x) for x in r.release.split(".")[:2]) for r in ISSUE_RECORDS
                if r.release[:1].isdigit()}  # fmt: skip
    assert {(0, 30), (0, 31)} <= releases


def _printed(value: object) -> tuple[str, ...]:
    """The ways a figure appears in a log: 178,880 / 178880, 3.81 / 3.81GiB, 2.04x."""
    if isinstance(value, int):
        return (f"{value:,}", str(value))
    if isinstance(value, float):
        return (f"{value:.2f}", f"{value:.4f}", repr(value))
    return (str(value),)


QUOTED = [r for r in ISSUE_RECORDS if r.quote]


@pytest.mark.parametrize("record", QUOTED, ids=_ids(QUOTED))
def test_every_logged_figure_is_in_the_quoted_text(record: IssueRecord) -> None:
    # Figures are copied, not paraphrased: each one appears in the text quoted from the source.
    text = "\n".join(record.quote)
    for name, value in vars(record.logged).items():
        if value is not None:
            assert any(form in text for form in _printed(value)), (record.key, name, value)


def test_most_records_quote_their_source() -> None:
    assert len(QUOTED) >= len(ISSUE_RECORDS) - 3


GIVEN = [
    r
    for r in ISSUE_RECORDS
    if r.logged.available_gib and (r.logged.tokens or r.logged.blocks or r.logged.error_tokens)
]


@pytest.mark.parametrize("record", GIVEN, ids=_ids(GIVEN))
def test_count_from_logged_memory_exact_to_the_block(record: IssueRecord) -> None:
    check = CHECKS[record.key]
    if "given" in record.mismatch:
        # Documented: the logged count needs *less* memory than this rank logged (vLLM keeps
        # the minimum over ranks), so it falls below everything the logged memory carves.
        assert check.given_consistent is False
        assert check.given_tokens is not None and check.implied_gib is not None
        logged = record.logged.tokens or record.logged.error_tokens
        assert logged is not None and logged < check.given_tokens[0]
        assert check.implied_gib < record.logged.available_gib - 0.05  # type: ignore[operator]
    else:
        assert check.given_consistent is True, (record.key, check.given_tokens)


COUNTED = [r for r in ISSUE_RECORDS if r.logged.blocks or r.logged.tokens]


@pytest.mark.parametrize("record", COUNTED, ids=_ids(COUNTED))
def test_figures_from_logged_count_exact(record: IssueRecord) -> None:
    check = CHECKS[record.key]
    assert check.count is not None
    if record.logged.blocks is not None:
        assert check.count.num_blocks == record.logged.blocks
    assert check.count_consistent is True, (record.key, check.count)


CPU = [r for r in ISSUE_RECORDS if r.logged.cpu_blocks is not None]


@pytest.mark.parametrize("record", CPU, ids=_ids(CPU))
def test_v0_cpu_pool_is_the_swap_space_carved_into_the_same_blocks(record: IssueRecord) -> None:
    # 4 GiB of swap per GPU // bytes per block: the CPU pool pins the per-rank KV shape.
    check = CHECKS[record.key]
    assert record.formula == "v0" and check.count is not None
    assert check.count.num_cpu_blocks == record.logged.cpu_blocks
    assert check.count.num_cpu_blocks == 4 * 2**30 // check.count.bytes_per_block


CONC = [r for r in ISSUE_RECORDS if r.logged.concurrency]


@pytest.mark.parametrize("record", CONC, ids=_ids(CONC))
def test_printed_concurrency(record: IssueRecord) -> None:
    check = CHECKS[record.key]
    assert check.count is not None
    assert f"{check.count.max_concurrency:.2f}" == record.logged.concurrency
    if check.given_concurrency and "given" not in record.mismatch:
        # the carve's two ends bound every concurrency the logged GiB figure can print
        ends = [float(c) for c in check.given_concurrency]
        assert min(ends) <= float(record.logged.concurrency) <= max(ends)


NEEDED = [r for r in ISSUE_RECORDS if r.logged.needed_gib]


@pytest.mark.parametrize("record", NEEDED, ids=_ids(NEEDED))
def test_start_up_check_needed_memory_and_estimate(record: IssueRecord) -> None:
    check = CHECKS[record.key]
    assert check.needed_gib == (record.logged.needed_gib,)
    assert check.given_fits is False  # each of these logs is vLLM refusing to start
    if record.logged.estimated_max_len is not None:
        lo, hi = check.estimate_range or (0, 0)
        assert lo <= record.logged.estimated_max_len <= hi


ERRORS = [r for r in ISSUE_RECORDS if r.logged.error_tokens is not None]


@pytest.mark.parametrize("record", ERRORS, ids=_ids(ERRORS))
def test_v0_error_prints_blocks_times_block_size(record: IssueRecord) -> None:
    if record.logged.blocks is not None:
        assert record.logged.blocks * 16 == record.logged.error_tokens


@pytest.mark.parametrize("record", ISSUE_RECORDS, ids=_ids(list(ISSUE_RECORDS)))
def test_end_to_end_within_five_percent_or_documented(record: IssueRecord) -> None:
    check = CHECKS[record.key]
    if "no_e2e" in record.mismatch:
        assert check.plan is None and check.headline_error is None
        return
    assert record.gpu is not None, "a record without a GPU needs a 'no_e2e' reason"
    assert check.plan is not None, check.plan_error
    if check.headline_error is None:  # nothing logged to compare (weights-only record)
        assert record.logged.weights_gib is not None
        return
    if "e2e" in record.mismatch:
        assert abs(check.headline_error) > 0.05, "documented miss no longer holds: update it"
    else:
        assert abs(check.headline_error) <= 0.05, (record.key, check.headline_error)
        if check.e2e_tokens_error is not None and "given" not in record.mismatch:
            assert abs(check.e2e_tokens_error) <= 0.05


@pytest.mark.parametrize("record", ISSUE_RECORDS, ids=_ids(list(ISSUE_RECORDS)))
def test_start_up_verdict_matches_the_outcome_or_is_a_documented_miss(record: IssueRecord) -> None:
    # "Will it start?" against what happened: a wrong verdict must be an end-to-end miss.
    check = CHECKS[record.key]
    if check.verdict_agrees is False:
        assert "e2e" in record.mismatch or "verdict" in record.mismatch, record.key
    if "verdict" in record.mismatch:  # the stated outcome miss still holds
        assert check.verdict_agrees is False, record.key
    documented = "e2e" in record.mismatch or "verdict" in record.mismatch
    if record.started is False and check.plan is not None and not documented:
        assert check.plan.starts is False


def test_failed_start_ups_carry_the_refusal_or_an_oom() -> None:
    # A refusal that vLLM printed is consistent with the record's outcome.
    for r in ISSUE_RECORDS:
        if r.logged.needed_gib or r.logged.error_tokens:
            assert r.started is False, r.key
        if r.logged.available_gib is not None and r.logged.available_gib <= 0:
            assert r.started is False, r.key


WEIGHTS = [r for r in ISSUE_RECORDS if r.logged.weights_gib]


@pytest.mark.parametrize("record", WEIGHTS, ids=_ids(WEIGHTS))
def test_weights_within_five_percent(record: IssueRecord) -> None:
    error = CHECKS[record.key].weights_error
    assert error is not None and abs(error) <= 0.05, (record.key, error)


def test_gpt_oss_mxfp4_padding_reproduces_weights() -> None:
    # 64.38 GiB logged by vLLM 0.14.1 (#33155); without the 2880 -> 3072 expert padding
    # the estimate would be ~60.7 GiB.
    error = CHECKS["gpt-oss-120b-h100-0.14"].weights_error
    assert error is not None and abs(error) < 0.005


def test_release_to_formula() -> None:
    from capacity_planner.accounting.versions import get_formula

    assert formula_for("0.6.4", "V0") == "v0"
    assert formula_for("0.8.3", "V0 worker") == "v0"  # the V0 worker, whatever the release
    assert formula_for("0.7.1 (main)", "V1") == "v1-0.8"
    assert formula_for("0.10.2", "V1") == "v1"
    assert formula_for("not stated", "V1") == "v1"
    # From 0.21 the CUDA-graph estimate is subtracted from the budget.
    assert get_formula(formula_for("0.28.0", "V1")).subtracts_cuda_graphs


def test_summary_counts_follow_the_checks() -> None:
    checks = tuple(CHECKS.values())
    s = accuracy_summary(checks)
    errors = [abs(e) for c in checks if (e := c.headline_error) is not None]
    assert s["records"] == len(ISSUE_RECORDS) and s["e2e"] == len(errors)
    assert s["within_1"] <= s["within_5"] <= s["within_10"] <= s["e2e"]
    assert s["within_5"] == sum(e <= 0.05 for e in errors)
    assert s["carved_exact"] == s["carved"] - sum("given" in r.mismatch for r in GIVEN)
    assert s["counted_exact"] == s["counted"] == len(COUNTED)


def _valid_record(**overrides: object) -> dict[str, object]:
    record: dict[str, object] = {
        "key": "k",
        "source": {"repo": "o/r", "kind": "issue", "number": 1, "where": "w", "url": "u"},
        "release": "0.10.2",
        "engine": "V1",
        "model": "Qwen/Qwen3-8B",
    }
    record.update(overrides)
    return record


def test_load_records_reads_a_minimal_record() -> None:
    (r,) = load_records(json.dumps({"records": [_valid_record()]}))
    assert r.gpu is None and r.settings == {} and r.logged.tokens is None


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        ({"tokens": 5}, "tokens"),  # a figure outside "logged"
        ({"logged": {"available": 3.1}}, "available"),
        ({"source": {"repo": "o/r"}}, "number"),
    ],
)
def test_malformed_record_is_refused_naming_the_field(bad: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        load_records(json.dumps({"records": [_valid_record(**bad)]}))


def test_duplicate_keys_are_refused() -> None:
    with pytest.raises(ValueError, match="unique"):
        load_records(json.dumps({"records": [_valid_record(), _valid_record()]}))


def test_shipped_data_is_inside_the_package() -> None:
    data = resources.files("capacity_planner").joinpath("records").joinpath("data")
    assert data.joinpath("vllm_startups.json").is_file()
    for r in ISSUE_RECORDS:
        if r.model.startswith("config:"):
            assert data.joinpath(r.model.removeprefix("config:")).is_file()
            assert r.model_spec().num_hidden_layers > 0


@settings(max_examples=40, deadline=None)
@given(record=st.sampled_from(COUNTED), blocks=st.integers(min_value=1, max_value=400_000))
def test_carving_n_blocks_of_memory_gives_n_blocks(record: IssueRecord, blocks: int) -> None:
    # What the count check relies on: n blocks' worth of bytes carves to exactly n blocks
    # and n x block_size tokens, so a log with any other count fails the check.
    from dataclasses import replace

    counted = Logged(blocks=blocks)
    check = check_record(replace(record, logged=counted, mismatch={"no_e2e": "property test"}))
    assert check.count is not None and check.count.num_blocks == blocks
    groups = len(check.count.groups)
    if groups > 1 and record.formula in ("v1", "v1-graphs"):
        # 0.9-0.20 print the blocks shared by the groups (Gemma-3's 7 groups, vLLM 0.11)
        assert check.count.num_tokens == blocks // groups * check.count.block_size
    else:
        assert check.count.num_tokens == blocks * check.count.block_size
    assert check.count_consistent is True


def _between(text: str, start: str, end: str) -> str:
    head = text.index("-->", text.index(start)) + 3
    return text[head : text.index(end)].strip()


def test_accuracy_doc_is_current() -> None:
    doc = (PACKAGE / "docs" / "ACCURACY.md").read_text(encoding="utf-8")
    checks = tuple(CHECKS.values())
    assert _between(doc, "<!-- accuracy-summary:start", "<!-- accuracy-summary:end") == (
        summary_markdown(checks)
    )
    assert _between(doc, "<!-- accuracy-table:start", "<!-- accuracy-table:end") == (
        markdown_table(checks)
    )


def test_readme_summary_is_current() -> None:
    readme = (PACKAGE / "README.md").read_text(encoding="utf-8")
    assert _between(readme, "<!-- accuracy-summary:start", "<!-- accuracy-summary:end") == (
        summary_markdown(tuple(CHECKS.values()))
    )


COLD = [r for r in ISSUE_RECORDS if r.compile_cache == "cold" and r.logged.available_gib]


@pytest.mark.parametrize("record", COLD, ids=_ids(COLD))
def test_cold_starts_lie_in_the_planners_cold_band(record: IssueRecord) -> None:
    # A cold compile cache costs 0.45-2.25 GiB of non-KV memory: the logged memory of a cold
    # start is the warm estimate less something in that range.
    check = CHECKS[record.key]
    assert check.cold_band is not None
    if "cold_band" in record.mismatch:  # a documented miss still holds
        assert check.in_cold_band is False, (record.key, check.cold_band)
        return
    assert check.in_cold_band is True, (record.key, check.cold_band)


def test_cold_warm_pairs_bound_the_cold_extra() -> None:
    # Each configuration started both ways moved by an amount inside the modelled range, and
    # the upper end (what the planner's cold plan takes) is no looser than the evidence needs.
    pairs = cold_warm_pairs()
    assert len(pairs) >= 3
    lo, hi = (x / GiB for x in COLD_COMPILE_EXTRA_RANGE)
    for p in pairs:
        assert p.cold.compile_cache == "cold" and p.warm.compile_cache == "warm"
        assert p.cold.model == p.warm.model and p.cold.gpu == p.warm.gpu
        assert lo <= p.delta_gib <= hi, (p.name, p.delta_gib)
    same = [p.delta_gib for p in pairs if p.same_release]
    assert same and hi - max(same) <= 0.25
    assert COLD_COMPILE_EXTRA_RANGE[1] == COLD_COMPILE_EXTRA


def test_a_cold_plan_keeps_the_upper_end_of_the_cold_extra() -> None:
    r = BY_KEY["qwen3-8b-awq-eagle3-5070ti-0.31-warm"]
    p = plan(r.model_spec(), resolve_gpu(r.gpu or ""), r.engine_settings())
    assert p.cold is not None
    assert p.memory.available_kv_bytes - p.cold.memory.available_kv_bytes == COLD_COMPILE_EXTRA


BREAKDOWN = [r for r in ISSUE_RECORDS if r.logged.consumed_gib is not None]


@pytest.mark.parametrize("record", BREAKDOWN, ids=_ids(BREAKDOWN))
def test_memory_breakdown_adds_up_and_fits_the_warm_up_term(record: IssueRecord) -> None:
    # The log's own arithmetic: KV = utilisation x total - consumed - peak activation.
    log, check = record.logged, CHECKS[record.key]
    assert check.plan is not None and log.peak_activation_gib is not None
    budget = check.plan.memory.requested_bytes / GiB
    assert log.available_gib is not None
    assert abs(budget - log.consumed_gib - log.peak_activation_gib - log.available_gib) < 0.03
    estimate = check.plan.memory.activation_bytes / GiB
    if record.compile_cache == "warm":
        # the printed peak is the profile's transient plus vLLM's graph estimate (>= 0.28);
        # the planner's transient (model runner V2: forward or logits) is held to the rest
        assert log.cuda_graph_estimate_gib is not None
        assert abs((estimate + log.cuda_graph_estimate_gib) / log.peak_activation_gib - 1) <= 0.05
    elif record.compile_cache == "cold":
        # a cold start's peak carries compile buffers on top of the warm-up pass
        assert log.peak_activation_gib > estimate


def test_breakdown_pair_splits_the_cold_extra() -> None:
    # The 1.26 GiB the typhoon pair moved is the logs' consumed + peak difference.
    (pair,) = [p for p in cold_warm_pairs() if p.cold.logged.consumed_gib is not None]
    c, w = pair.cold.logged, pair.warm.logged
    assert c.consumed_gib and c.peak_activation_gib and w.consumed_gib and w.peak_activation_gib
    extra = (c.consumed_gib + c.peak_activation_gib) - (w.consumed_gib + w.peak_activation_gib)
    assert abs(extra - pair.delta_gib) < 0.015


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"kind": "file", "number": None, "path": None}, "path"),
        ({"kind": "issue", "number": None}, "number"),
        ({"kind": "wiki"}, "kind"),
    ],
)
def test_source_refuses_a_kind_without_its_locator(fields: dict[str, object], named: str) -> None:
    base: dict[str, object] = {"repo": "o/r", "kind": "issue", "number": 1, "where": "w"}
    with pytest.raises(ValueError, match=named):
        Source(**{**base, "url": "u", **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        ({"compile_cache": "tepid"}, "compile_cache"),
        ({"pair": "p"}, "pair"),
        ({"mismatch": {"typo": "x"}}, "mismatch"),
    ],
)
def test_record_refuses_bad_cache_pair_or_mismatch(bad: dict[str, object], named: str) -> None:
    with pytest.raises(ValueError, match=named):
        load_records(json.dumps({"records": [_valid_record(**bad)]}))
