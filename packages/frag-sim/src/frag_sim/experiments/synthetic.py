"""Reproductions on synthetic streams: Phase 02 lab-02, the capstone, PagedAttention Figs 2-15."""

from __future__ import annotations

from typing import Any

from ..config import SimConfig
from ..engine.sharing import simulate_sharing
from ..engine.simulator import simulate
from ..report.experiment import ExperimentReport
from ..report.experiment import row as _row
from ..report.metrics import SimResult
from ..workload.requests import LengthDist, SyntheticWorkload, Workload

# PagedAttention Table 1: OPT-13B, 12 GiB of KV at 800 KiB per token = 15,728 slots.
FIG_CAPACITY = 15_728

PAPER_FIG2 = {  # token states, reservation, internal, external (percent)
    "max": (20.4, 13.3, 57.3, 8.9),
    "pow2": (26.8, 17.9, 13.6, 41.6),
    "exact": (38.2, 25.2, 0.0, 36.6),
    "paged": (96.3, 0.0, 0.0, 3.7),
}
PAPER_FIG13 = {"max": 7.00, "pow2": 9.81, "exact": 13.62, "paged": 30.42}


# -- 1. Phase 02 lab-02 --------------------------------------------------------------------
def _lab02(quick: bool = False, **_: Any) -> ExperimentReport:
    n = 2000  # fast (~0.2 s); fewer requests let warm-up and drain blur the levels
    base = SimConfig(capacity_tokens=8 * 2048, max_model_len=2048, allocator="first_fit")
    stated = SyntheticWorkload(
        n,
        rate=40.0,
        seed=0,
        prompt=LengthDist("fixed", mean=64),
        output=LengthDist("fixed", mean=128),
        name="lab02-stated",
    ).generate()
    eight = SyntheticWorkload(
        n,
        rate=40.0,
        seed=0,
        prompt=LengthDist.uniform(96, 160),
        output=LengthDist.uniform(192, 320),
        name="lab02-8x",
    ).generate()
    runs = {
        "stated/max": simulate(stated, base.replace(policy="max")),
        "stated/paged,max_num_seqs=64": simulate(stated, base.replace(max_num_seqs=64)),
        "stated/paged,block=1,max_num_seqs=64": simulate(
            stated, base.replace(max_num_seqs=64, block_size=1)
        ),
        "stated/paged,memory-bound": simulate(stated, base),
        "8x/max": simulate(eight, base.replace(policy="max")),
        "8x/paged,memory-bound": simulate(eight, base),
    }
    rows = [
        _row(r, case=k, workload=r.workload, waste_of_alloc=round(1 - r.token_usage, 3))
        for k, r in runs.items()
    ]
    s_max, s_cap = runs["stated/max"], runs["stated/paged,max_num_seqs=64"]
    s_mem, e_max, e_mem = (
        runs["stated/paged,memory-bound"],
        runs["8x/max"],
        runs["8x/paged,memory-bound"],
    )
    checks = [
        ("max reservation admits exactly 8 (8 x 2048 slots)", s_max.peak_running == 8),
        (
            "max reservation wastes ~94% of what it allocates",
            abs((1 - s_max.token_usage) - 0.94) < 0.01,
        ),
        ("paged reaches 64 only because max_num_seqs=64 caps it", s_cap.peak_running == 64),
        (
            "paged wastes ~0 of what it allocates (block 16: last-block slack only)",
            1 - s_cap.token_usage < 0.07,
        ),
        ("memory-bound paged admits ~1/(1-0.94) = ~16x, not 8x", s_mem.mean_running > 100),
        (
            "consistent 8x version: max wastes 87.5% of its allocation",
            abs((1 - e_max.token_usage) - 0.875) < 0.01,
        ),
        ("consistent 8x version: paged averages ~64 running", 55 <= e_mem.mean_running <= 70),
    ]
    notes = [
        "No-queueing identity: paged/contiguous admissions ~ max_len / live and contiguous "
        "waste = 1 - live / max_len, so '8 vs 64' implies 87.5% waste and '94% waste' "
        "implies ~16x. Both hold together only with a scheduler cap (max_num_seqs=64).",
    ]
    return ExperimentReport(
        "lab02", "Phase 02 lab-02: 8 admissions vs 64, 94% waste vs ~0", rows, checks, notes, runs
    )


# -- 2. the capstone, step 05 --------------------------------------------------------------
def capstone_workload(num_requests: int = 1000, rate: float = 8.0) -> Workload:
    return SyntheticWorkload.from_mix(
        "capstone", num_requests=num_requests, rate=rate, seed=3, name="capstone"
    ).generate()


CAPSTONE_CONFIG = SimConfig(capacity_tokens=32 * 4500, max_model_len=4500, allocator="first_fit")


def _capstone(quick: bool = False, **_: Any) -> ExperimentReport:
    wl = capstone_workload(300 if quick else 1000)
    runs = {p: simulate(wl, CAPSTONE_CONFIG.replace(policy=p)) for p in ("max", "paged")}
    rows = [_row(r, policy=p, waste_of_alloc=round(1 - r.token_usage, 3)) for p, r in runs.items()]
    naive, paged = runs["max"], runs["paged"]
    checks = [
        ("naive cache sits at its ~50% waste ceiling", 0.45 <= 1 - naive.token_usage <= 0.55),
        ("paged stays near 100% utilisation (live / allocated >= 0.98)", paged.token_usage >= 0.98),
        ("paged runs more requests at once", paged.mean_running > 1.5 * naive.mean_running),
    ]
    notes = [
        "prompts U[200,4000], outputs U[50,500], Poisson 8 req/s, seed 3; "
        "max_model_len 4500 = the longest possible request"
    ]
    return ExperimentReport(
        "capstone",
        "the capstone workload: naive ~50% waste ceiling vs paged ~100%",
        rows,
        checks,
        notes,
        runs,
    )


# -- 3 and 4. PagedAttention Fig. 2 and Fig. 13 --------------------------------------------
def sharegpt_workload(num_requests: int = 3000, rate: float = 2.0) -> Workload:
    return SyntheticWorkload.from_mix(
        "sharegpt", num_requests=num_requests, rate=rate, seed=0, name="sharegpt-like"
    ).generate()


FIG_CONFIG = SimConfig(
    capacity_tokens=FIG_CAPACITY, max_model_len=2048, allocator="buddy", step_time_s=0.05
)


def _fig_runs(quick: bool) -> dict[str, SimResult]:
    wl = sharegpt_workload(800 if quick else 3000)
    return {
        p: simulate(wl, FIG_CONFIG.replace(policy=p)) for p in ("max", "pow2", "exact", "paged")
    }


def _fig2(quick: bool = False, **_: Any) -> ExperimentReport:
    runs = _fig_runs(quick)
    rows = []
    for p, r in runs.items():
        f = r.breakdown.fig2_row()
        paper = PAPER_FIG2[p]
        rows.append(
            _row(
                r,
                token=round(f["token_states"], 1),
                paper_token=paper[0],
                reserv=round(f["reservation"], 1),
                paper_reserv=paper[1],
                internal=round(f["internal"], 1),
                paper_internal=paper[2],
                external=round(f["external"], 1),
                paper_external=paper[3],
            )
        )
    tok = {p: r.breakdown.fig2_row()["token_states"] for p, r in runs.items()}
    checks = [
        (
            "ordering max < pow2 < exact < paged (share of memory holding tokens)",
            tok["max"] < tok["pow2"] < tok["exact"] < tok["paged"],
        ),
        *(
            (
                f"{p}: token share within 4 points of the paper's {PAPER_FIG2[p][0]}%",
                abs(tok[p] - PAPER_FIG2[p][0]) <= 4.0,
            )
            for p in runs
        ),
    ]
    notes = [
        "workload: synthetic, paper-mean-matched ShareGPT (means 161/338, our spreads), "
        "Poisson 2 req/s; buddy allocator as in §6.1; rows sum to 100 over busy memory"
    ]
    return ExperimentReport(
        "fig2", "PagedAttention Fig. 2: where KV memory goes", rows, checks, notes, runs
    )


def _fig13(quick: bool = False, **_: Any) -> ExperimentReport:
    runs = _fig_runs(quick)
    rows = [_row(r, paper_mean_batched=PAPER_FIG13[p]) for p, r in runs.items()]
    checks = [
        (
            "max reservation admits exactly 7 at once (15,728 // 2048)",
            runs["max"].peak_running == 7 and runs["max"].mean_running > 6.5,
        ),
        ("paged batches about 30 (25..36)", 25 <= runs["paged"].mean_running <= 36),
        (
            "ordering of mean batch size max < pow2 < exact < paged",
            runs["max"].mean_running
            < runs["pow2"].mean_running
            < runs["exact"].mean_running
            < runs["paged"].mean_running,
        ),
    ]
    return ExperimentReport(
        "fig13",
        "PagedAttention Fig. 13: requests batched at once",
        rows,
        checks,
        ["same runs as fig2"],
        runs,
    )


# -- PagedAttention Fig. 15: sharing through fork + copy-on-write ----------------------------
PAPER_FIG15 = {  # Alpaca, memory saving in percent (§6.3)
    ("parallel", 2): 6.09,
    ("parallel", 4): 8.53,
    ("parallel", 6): 9.79,
    ("beam", 2): 37.56,
    ("beam", 4): 53.13,
    ("beam", 6): 55.16,
}


def _fig15(quick: bool = False, **_: Any) -> ExperimentReport:
    rows: list[dict[str, Any]] = []
    saved: dict[tuple[str, str, int], float] = {}
    for mix in ("alpaca", "sharegpt"):
        # ShareGPT beams are ~20x the work of Alpaca's (longer outputs): fewer groups
        n = (60 if quick else 300) if mix == "alpaca" else (20 if quick else 60)
        wl = SyntheticWorkload.from_mix(mix, num_requests=2000, rate=1.0, seed=0).generate()
        for mode in ("parallel", "beam"):
            for width in (2, 4, 6):
                r = simulate_sharing(wl, mode, width, num_requests=n)
                saved[(mix, mode, width)] = 100 * r.saved
                rows.append(
                    {
                        "workload": f"{mix}-like",
                        "config": f"{mode} n={width}, block 16",
                        "saved_%": round(100 * r.saved, 2),
                        "paper_alpaca_%": PAPER_FIG15[(mode, width)] if mix == "alpaca" else "",
                        "cow_copies": r.cow_copies,
                    }
                )
    checks = [
        (
            f"{mix} {mode}: saving grows with width",
            saved[(mix, mode, 2)] < saved[(mix, mode, 4)] < saved[(mix, mode, 6)],
        )
        for mix in ("alpaca", "sharegpt")
        for mode in ("parallel", "beam")
    ]
    checks.append(
        (
            "beam search saves more than parallel sampling at every width",
            all(
                saved[(m, "beam", w)] > saved[(m, "parallel", w)]
                for m in ("alpaca", "sharegpt")
                for w in (2, 4, 6)
            ),
        )
    )
    checks.append(
        (
            "alpaca parallel sampling within 3 points of the paper (6.1-9.8%)",
            all(
                abs(saved[("alpaca", "parallel", w)] - PAPER_FIG15[("parallel", w)]) <= 3
                for w in (2, 4, 6)
            ),
        )
    )
    checks.append(
        (
            "alpaca beam search within 10 points of the paper (37.6-55.2%)",
            all(
                abs(saved[("alpaca", "beam", w)] - PAPER_FIG15[("beam", w)]) <= 10
                for w in (2, 4, 6)
            ),
        )
    )
    notes = [
        "fork + copy-on-write on the real KVCacheManager, one group at a time; beam "
        "selection is a uniform resampling model (ours)"
    ]
    return ExperimentReport(
        "fig15", "PagedAttention Fig. 15: memory saved by sharing", rows, checks, notes
    )
