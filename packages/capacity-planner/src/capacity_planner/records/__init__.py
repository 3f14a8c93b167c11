"""Real vLLM start-ups from public issues, PRs and repository files, and the planner on them.

`sources` reads the records (data shipped with the package: figures copied from quoted log
text, with their issue or PR); `checks` holds the planner against each one (carve from the
logged memory, carve from the logged count, end to end); `report` writes the tables of
`docs/ACCURACY.md` and the README summary. `python -m capacity_planner.records` prints them;
`tests/test_accuracy.py` asserts every record, including the stated reason for each miss.
"""

from capacity_planner.records.checks import (
    ColdWarmPair,
    RecordCheck,
    accuracy_summary,
    check_record,
    cold_warm_pairs,
)
from capacity_planner.records.report import main, markdown_table, summary_markdown
from capacity_planner.records.sources import (
    ISSUE_RECORDS,
    MISMATCH_KINDS,
    IssueRecord,
    Logged,
    Source,
    formula_for,
    load_records,
)

__all__ = [
    "ISSUE_RECORDS",
    "MISMATCH_KINDS",
    "ColdWarmPair",
    "IssueRecord",
    "Logged",
    "RecordCheck",
    "Source",
    "accuracy_summary",
    "check_record",
    "cold_warm_pairs",
    "formula_for",
    "load_records",
    "main",
    "markdown_table",
    "summary_markdown",
]
