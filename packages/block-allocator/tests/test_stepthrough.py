"""The step-through recorder, page writer, trace replay and command (no browser needed)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from block_allocator import KVCacheManager, Request
from block_allocator.cli import main
from block_allocator.stepthrough import (
    SCENARIOS,
    Recorder,
    TraceError,
    block_state,
    load_trace,
    record_scenario,
    render_page,
    replay_trace,
    take_snapshot,
)

pytestmark = pytest.mark.extended


def embedded(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="recording">(.*?)</script>', html, re.S)
    assert match is not None
    return json.loads(match.group(1))


def test_block_states_cover_every_case() -> None:
    assert block_state(0, True, False) == "null"
    assert block_state(0, False, False) == "free"
    assert block_state(0, False, True) == "cached"
    assert block_state(1, False, True) == "used"
    assert block_state(3, False, False) == "shared"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_every_scenario_records_consistent_snapshots(name: str) -> None:
    rec = record_scenario(name)
    assert len(rec.steps) > 5 and rec.steps[0].call == "start"
    num_blocks = rec.target.block_pool.num_blocks
    for step in rec.steps:
        snap = step.snapshot
        assert [b["id"] for b in snap.blocks] == list(range(num_blocks))
        in_queue = set(snap.free_queue)
        assert len(in_queue) == len(snap.free_queue) == snap.num_free_blocks
        for b in snap.blocks:
            # A block is in the free queue exactly when nobody holds it (I1).
            assert (b["id"] in in_queue) == (b["ref"] == 0 and b["state"] != "null")
        holders: dict[int, int] = {}
        for ids in snap.tables.values():
            for bid in set(ids):
                holders[bid] = holders.get(bid, 0) + ids.count(bid)
        for b in snap.blocks[1:]:
            assert b["ref"] == holders.get(b["id"], 0)


def test_biography_shows_sharing_eviction_and_revival() -> None:
    steps = record_scenario("biography").steps
    calls = [s.call for s in steps]
    shared = steps[calls.index("allocate_slots(b, 1, [#1, #2])")].snapshot
    assert [shared.blocks[i]["state"] for i in (1, 2)] == ["shared", "shared"]
    evicting = next(s for s in steps if s.call.startswith("allocate_slots(c,"))
    assert evicting.snapshot.chains["a"][2]["block"] is None  # a's third hash evicted
    lookup = next(s for s in steps if s.call == "get_computed_blocks(d)")
    queue = lookup.snapshot.free_queue
    assert 0 < queue.index(1) < len(queue) - 1  # the hit sits mid-queue: a revival
    assert lookup.result.startswith("hit 8 tokens")


def test_beam_records_the_copy_on_write_pair() -> None:
    rec = record_scenario("beam")
    copy = next(s for s in rec.steps if s.call == "take_blocks_to_copy()")
    src, dst = (int(x) for x in re.fullmatch(r"copy #(\d+) -> #(\d+)", copy.result).groups())
    assert copy.snapshot.tables["beam1"][-1] == dst and src in copy.snapshot.tables["beam0"]


def test_recording_leaves_the_manager_untouched() -> None:
    mgr = KVCacheManager(8, 4)
    before = dict(vars(mgr))
    rec = Recorder(mgr)
    rec.admit(Request("a", [1, 2, 3, 4, 5]))
    assert type(mgr).allocate_slots is KVCacheManager.allocate_slots
    assert set(vars(mgr)) == set(before)  # no attribute added, no method patched
    # Calls made directly on the manager are not steps.
    n = len(rec.steps)
    mgr.free(Request("a", [1, 2, 3, 4, 5]))
    assert len(rec.steps) == n


def test_the_allocator_does_not_import_the_recorder() -> None:
    code = "import sys, block_allocator; print('block_allocator.stepthrough' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_page_is_self_contained_and_escapes_the_data() -> None:
    mgr = KVCacheManager(6, 2)
    rec = Recorder(mgr, title="<b>title</b>")
    rec.admit(Request("</script><script>alert(1)</script>", [1, 2, 3]))
    rec.note("a note with <!-- a comment")
    page = render_page(rec)
    assert "<b>title</b>" not in page and "&lt;b&gt;title&lt;/b&gt;" in page
    assert page.count("</script>") == 2  # the data element's and the player's, nothing else
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<link" not in page and "@import" not in page and "url(" not in page
    data = embedded(page)
    assert data["steps"][-1]["note"] == "a note with <!-- a comment"
    assert "</script><script>alert(1)</script>" in data["steps"][-1]["tables"]


def test_write_page_is_atomic(tmp_path: Path) -> None:
    rec = record_scenario("beam")
    out = rec.write_page(tmp_path / "beam.html")
    assert embedded(out.read_text())["steps"] == [s.to_json() for s in rec.steps]
    with pytest.raises(FileNotFoundError, match="folder"):
        rec.write_page(tmp_path / "missing" / "x.html")
    with pytest.raises(IsADirectoryError):
        rec.write_page(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["beam.html"]


TRACE = {
    "num_blocks": 8,
    "block_size": 2,
    "steps": [
        {"op": "admit", "request": "a", "prompt": [1, 2, 3]},
        {"op": "fork", "request": "a", "child": "a1"},
        {"op": "decode", "request": "a1", "tokens": [7]},
        {"op": "note", "text": "the child copied the shared partial block"},
        {"op": "free", "request": "a"},
        {"op": "reset_prefix_cache"},
    ],
}


def test_a_trace_replays_through_the_manager() -> None:
    rec = replay_trace(TRACE)
    assert [s.call for s in rec.steps][-2:] == ["free(a)", "reset_prefix_cache()"]
    assert any(s.note == "the child copied the shared partial block" for s in rec.steps)
    final = rec.steps[-1].snapshot
    assert list(final.tables) == ["a1"] and len(final.tables["a1"]) == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_blocks": 1}, r"num_blocks must be an int >= 2, got 1"),
        ({"block_size": True}, r"block_size must be an int >= 1, got True"),
        ({"steps": [{"op": "grow"}]}, r"steps\[0\]\.op must be one of"),
        ({"steps": [{"op": "admit", "request": "a", "prompt": []}]}, r"steps\[0\]\.prompt"),
        ({"steps": [{"op": "admit", "request": "a", "prompt": [1.5]}]}, r"steps\[0\]\.prompt"),
        ({"steps": [{"op": "decode", "request": "", "tokens": [1]}]}, r"steps\[0\]\.request"),
        ({"steps": [{"op": "fork", "request": "a"}]}, r"steps\[0\]\.child"),
        ({"steps": [{"op": "note"}]}, r"steps\[0\]\.text"),
    ],
)
def test_a_malformed_trace_names_the_step_and_field(
    tmp_path: Path, change: dict, message: str
) -> None:
    path = tmp_path / "t.json"
    path.write_text(json.dumps({**TRACE, **change}))
    with pytest.raises(TraceError, match=message):
        load_trace(path)


def test_a_trace_naming_an_unknown_request_is_refused() -> None:
    with pytest.raises(TraceError, match=r"steps\[0\]\.request 'zz' was never admitted"):
        replay_trace({"num_blocks": 4, "block_size": 2, "steps": [{"op": "free", "request": "zz"}]})


def test_command_writes_pages_and_reports_errors(tmp_path: Path, capsys) -> None:
    assert main(["stepthrough", "beam", "-o", str(tmp_path / "b.html")]) == 0
    assert "wrote" in capsys.readouterr().out and (tmp_path / "b.html").is_file()
    trace = tmp_path / "t.json"
    trace.write_text(json.dumps(TRACE))
    assert main(["stepthrough", "--trace", str(trace), "-o", str(tmp_path / "t.html")]) == 0
    trace.write_text("{not json")
    assert main(["stepthrough", "--trace", str(trace), "-o", str(tmp_path / "u.html")]) == 2
    err = capsys.readouterr().err
    assert "not JSON" in err and "Traceback" not in err
    assert not (tmp_path / "u.html").exists()
    assert main(["stepthrough"]) == 2
    assert main(["stepthrough", "beam", "-o", str(tmp_path / "no" / "x.html")]) == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("block-allocator ")


ops = st.lists(
    st.tuples(st.sampled_from(["admit", "decode", "free"]), st.integers(0, 3), st.integers(1, 9)),
    max_size=25,
)


@settings(max_examples=60, deadline=None)
@given(ops)
def test_snapshots_match_the_pool_after_any_sequence(sequence: list) -> None:
    mgr = KVCacheManager(12, 2)
    rec = Recorder(mgr)
    live: dict[int, Request] = {}
    for op, rid, n in sequence:
        if op == "admit" and rid not in live:
            request = Request(f"r{rid}", [rid] * n)
            if rec.admit(request) is not None:
                live[rid] = request
        elif op == "decode" and rid in live:
            rec.decode(live[rid], [5] * (n % 3 + 1))
        elif op == "free" and rid in live:
            rec.manager.free(live.pop(rid))
        snap = rec.steps[-1].snapshot
        direct = take_snapshot(mgr, live.values())
        assert snap.blocks == direct.blocks and snap.free_queue == direct.free_queue
        assert snap.tables == {f"r{k}": mgr.get_block_ids(f"r{k}") for k in live}
        assert snap.num_free_blocks + sum(b["ref"] > 0 for b in snap.blocks) == 11


def test_readme_recorder_example_runs(tmp_path: Path, monkeypatch) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## Watch it") :]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    monkeypatch.chdir(tmp_path)
    scope: dict[str, object] = {}
    exec(compile(code.group(1), "README.md", "exec"), scope)
    page = embedded((tmp_path / "mine.html").read_text())
    assert [s["call"] for s in page["steps"]] == [
        "start",
        "get_computed_blocks(a)",
        "allocate_slots(a, 6, [])",
        "free(a)",
    ]
    assert page["steps"][2]["note"] == "a's prompt fills one block and a half"
