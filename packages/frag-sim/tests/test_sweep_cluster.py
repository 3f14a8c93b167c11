"""Sweeps on a Dask cluster give the local results exactly (a LocalCluster in CI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from frag_sim import ConfigError, SimConfig, WorkloadSpec, run_sweep
from frag_sim.cli import main

distributed = pytest.importorskip("distributed")


def _strip(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]


@pytest.fixture(scope="module")
def cluster():  # type: ignore[no-untyped-def]
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as c:
        yield c


def test_dask_sweep_equals_local_processes(cluster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tasks = [
        (WorkloadSpec(mix="alpaca", num_requests=150, rate=20.0, seed=s), SimConfig(
            policy=p, capacity_tokens=cap, block_size=bs, max_model_len=1024))
        for s in (0, 1)
        for p in ("exact", "paged")
        for bs in (8, 32)
        for cap in (2048, 4096)
    ]  # fmt: skip
    seen: list[int] = []
    with distributed.Client(cluster) as client:
        on_cluster = run_sweep(tasks, cluster=client, progress=lambda d, n, r: seen.append(d))
    local = run_sweep(tasks, jobs=2)
    assert _strip(on_cluster) == _strip(local)
    assert sorted(seen) == list(range(1, len(tasks) + 1))
    # the command line, given the scheduler's address
    out = tmp_path / "s.json"
    args = ["sweep", "--mix", "alpaca", "--num-requests", "100", "--rate", "20",
            "--capacity-tokens", "4096", "--max-model-len", "1024", "--policies", "paged",
            "--block-sizes", "16,64", "--seeds", "0,1", "--json"]  # fmt: skip
    assert main([*args, str(out), "--cluster", cluster.scheduler_address]) == 0
    assert main([*args, str(tmp_path / "l.json")]) == 0
    rows = json.loads(out.read_text())
    assert len(rows) == 4 and {r["workload"] for r in rows} == {
        "alpaca(n=100,rate=20.0,seed=0)",
        "alpaca(n=100,rate=20.0,seed=1)",
    }
    assert _strip(rows) == _strip(json.loads((tmp_path / "l.json").read_text()))


def test_unreachable_scheduler_is_a_clean_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("frag_sim.experiments.sweep.CONNECT_TIMEOUT", "1s")
    rc = main(["sweep", "--num-requests", "10", "--cluster", "tcp://127.0.0.1:9"])
    assert rc == 2 and "Dask scheduler" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="jobs"):
        run_sweep([], jobs=0)
