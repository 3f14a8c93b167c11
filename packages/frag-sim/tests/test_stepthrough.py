"""A short simulator run recorded call by call for the step-through page."""

from __future__ import annotations

from pathlib import Path

import pytest

from frag_sim import SimConfig, simulate
from frag_sim.stepthrough import main, record_simulation, small_workload


def test_recording_changes_nothing_the_simulator_reports() -> None:
    workload = small_workload(10, seed=2)
    config = SimConfig(
        policy="paged",
        capacity_tokens=256,
        max_model_len=128,
        block_size=16,
        enable_prefix_caching=True,
    )
    recorder, recorded = record_simulation(workload, config)
    plain = simulate(workload, config)
    assert recorded.completed == plain.completed == 10
    keep = ("admissions", "preemptions", "peak_running", "mean_running", "prefix_hit_rate",
            "breakdown", "busy_steps")  # fmt: skip
    assert {k: getattr(recorded, k) for k in keep} == {k: getattr(plain, k) for k in keep}
    calls = [s.call.split("(")[0] for s in recorder.steps]
    assert {"get_computed_blocks", "allocate_slots", "free"} <= set(calls)
    assert any(s.result.startswith("hit 32 tokens") for s in recorder.steps)  # shared prompt
    last = recorder.steps[-1].snapshot
    assert last.tables == {}  # every request finished and freed its blocks
    for step in recorder.steps:
        snap = step.snapshot
        held = sum(b["ref"] > 0 for b in snap.blocks)
        assert held + snap.num_free_blocks == len(snap.blocks) - 1


def test_command_writes_the_page(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run.html"
    assert main(["-o", str(out), "--requests", "4"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert '<script type="application/json" id="recording">' in out.read_text()
    with pytest.raises(SystemExit):
        main(["-o", str(tmp_path / "missing" / "x.html")])
