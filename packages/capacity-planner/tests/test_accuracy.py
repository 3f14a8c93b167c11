"""The planner against real vLLM start-up records from public GitHub issues.

Records live in `capacity_planner.records.ISSUE_RECORDS` (model, GPU, settings, logged
numbers, issue). Exact checks: carving the logged available memory reproduces the logged
token/block count, concurrency, "KV cache is needed" figure and estimated maximum length.
End to end (GPU memory -> available KV memory): within 5% where the issue gives the GPU
and settings; each record outside that carries a documented reason, asserted below.
"""

from __future__ import annotations

import pytest

from capacity_planner.records import ISSUE_RECORDS, IssueRecord, check_record

BY_KEY = {r.key: r for r in ISSUE_RECORDS}


def test_at_least_ten_records_each_with_an_issue() -> None:
    assert len(ISSUE_RECORDS) >= 10
    assert len({r.key for r in ISSUE_RECORDS}) == len(ISSUE_RECORDS)
    for r in ISSUE_RECORDS:
        assert "#" in r.issue and r.issue.split("#")[1].isdigit()


GIVEN = [r for r in ISSUE_RECORDS if r.available_gib and (r.tokens or r.blocks or r.error_tokens)]


@pytest.mark.parametrize("record", GIVEN, ids=lambda r: r.key)
def test_tokens_from_logged_memory_exact(record: IssueRecord) -> None:
    check = check_record(record)
    if "given" in record.mismatch:
        # Documented: the logged count needs *less* memory than this rank logged (min over
        # ranks), so the count must fall below what the logged memory carves.
        assert check.given_consistent is False
        assert check.given_tokens is not None and check.implied_gib is not None
        logged = record.tokens or record.error_tokens
        assert logged is not None and logged < check.given_tokens[0]
        assert check.implied_gib < record.available_gib - 0.05  # type: ignore[operator]
    else:
        assert check.given_consistent is True, (record.key, check.given_tokens)


@pytest.mark.parametrize("record", [r for r in ISSUE_RECORDS if r.concurrency], ids=lambda r: r.key)
def test_printed_concurrency(record: IssueRecord) -> None:
    assert record.concurrency in check_record(record).concurrency_strings


@pytest.mark.parametrize("record", [r for r in ISSUE_RECORDS if r.needed_gib], ids=lambda r: r.key)
def test_start_up_check_needed_memory(record: IssueRecord) -> None:
    check = check_record(record)
    assert check.needed_gib == f"{record.needed_gib:.2f}"
    assert check.given_fits is False  # each of these logs is vLLM refusing to start


def test_estimated_max_model_len_within_rounding() -> None:
    record = BY_KEY["qwen3-30b-fp8-fp8kv-221k"]
    lo, hi = check_record(record).estimate_range or (0, 0)
    assert record.estimated_max_len is not None and lo <= record.estimated_max_len <= hi


def test_v0_error_token_count_exact() -> None:
    record = BY_KEY["llama31-8b-3090-29k"]
    # 1,478 blocks x 16 = 23,648 tokens: the V0 error prints num_gpu_blocks * block_size.
    assert record.blocks is not None and record.blocks * 16 == record.error_tokens


E2E = [r for r in ISSUE_RECORDS if r.gpu != "?" and r.available_gib is not None]


@pytest.mark.parametrize("record", E2E, ids=lambda r: r.key)
def test_end_to_end_within_five_percent_or_documented(record: IssueRecord) -> None:
    check = check_record(record)
    assert check.e2e_error is not None
    if "e2e" in record.mismatch:
        assert abs(check.e2e_error) > 0.05, "documented mismatch no longer holds: update docs"
    else:
        assert abs(check.e2e_error) <= 0.05, (record.key, check.e2e_error)
        if check.e2e_tokens_error is not None and "given" not in record.mismatch:
            assert abs(check.e2e_tokens_error) <= 0.05


@pytest.mark.parametrize("record", [r for r in ISSUE_RECORDS if r.weights_gib], ids=lambda r: r.key)
def test_weights_within_five_percent(record: IssueRecord) -> None:
    error = check_record(record).weights_error
    assert error is not None and abs(error) <= 0.05, (record.key, error)


def test_gpt_oss_mxfp4_padding_reproduces_weights() -> None:
    # 64.38 GiB logged by vLLM 0.14.1 (#33155); without the 2880 -> 3072 expert padding
    # the estimate would be ~60.7 GiB.
    error = check_record(BY_KEY["gpt-oss-120b-h100-0.14"]).weights_error
    assert error is not None and abs(error) < 0.005


def test_readme_table_is_current() -> None:
    from pathlib import Path

    from capacity_planner.records import markdown_table

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    start = readme.index("-->", readme.index("<!-- accuracy-table:start")) + 3
    end = readme.index("<!-- accuracy-table:end -->")
    assert readme[start:end].strip() == markdown_table().strip()
