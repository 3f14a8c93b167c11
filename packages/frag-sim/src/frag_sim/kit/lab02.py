"""Phase 02 lab-02 (fragmentation): the four-line model of contiguous vs paged memory.

The lab asks for "8 admissions vs 64, 94% waste vs ~0, on identical memory, re-derived in a
four-line model". This kit fixes that model's contract on *fixed streams*: a list of
request lengths (the tokens each request holds at its peak, prompt + output), all waiting
at once, admitted first come first served until the next one does not fit (no skipping,
as vLLM's FCFS scheduler does). A learner's module defines::

    contiguous_admissions(seq_lens, capacity_tokens, max_model_len) -> int
    paged_admissions(seq_lens, capacity_tokens, block_size) -> int
    contiguous_waste(seq_lens, capacity_tokens, max_model_len) -> float
    paged_waste(seq_lens, capacity_tokens, block_size) -> float

Contiguous reservation gives every request ``max_model_len`` slots (Orca (Max) in the
PagedAttention paper, §6.1); paged allocation gives it ``cdiv(len, block_size)`` blocks
from a pool of ``capacity_tokens // block_size`` blocks (§4.2). Waste is the share of the
admitted requests' allocated slots that hold no token (0.0 when nothing is admitted).
The reference answers below are the model itself; the package's tests check them against
a real ``block_allocator.BlockPool`` and a contiguous first-fit address space.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from types import ModuleType

from block_allocator.grading import Check, CheckFailed

__all__ = ["CHECKS", "CONTRACT", "reference"]

CONTRACT = """\
  contiguous_admissions(seq_lens, capacity_tokens, max_model_len) -> int
  paged_admissions(seq_lens, capacity_tokens, block_size) -> int
  contiguous_waste(seq_lens, capacity_tokens, max_model_len) -> float
  paged_waste(seq_lens, capacity_tokens, block_size) -> float
seq_lens: tokens each request holds at its peak, in arrival order (FCFS, no skipping);
waste: 1 - tokens / allocated slots over the admitted requests (0.0 if none)."""

CONTIGUOUS = ("contiguous_admissions", "contiguous_waste")
PAGED = ("paged_admissions", "paged_waste")


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _fcfs(costs: Sequence[int], budget: int) -> int:
    used = admitted = 0
    for c in costs:
        if used + c > budget:
            break
        used += c
        admitted += 1
    return admitted


class reference:
    """The model's answers (the lab's solution)."""

    @staticmethod
    def contiguous_admissions(
        seq_lens: Sequence[int], capacity_tokens: int, max_model_len: int
    ) -> int:
        return _fcfs([max_model_len] * len(seq_lens), capacity_tokens)

    @staticmethod
    def paged_admissions(seq_lens: Sequence[int], capacity_tokens: int, block_size: int) -> int:
        return _fcfs([_cdiv(n, block_size) for n in seq_lens], capacity_tokens // block_size)

    @staticmethod
    def contiguous_waste(
        seq_lens: Sequence[int], capacity_tokens: int, max_model_len: int
    ) -> float:
        k = reference.contiguous_admissions(seq_lens, capacity_tokens, max_model_len)
        return 1 - sum(seq_lens[:k]) / (k * max_model_len) if k else 0.0

    @staticmethod
    def paged_waste(seq_lens: Sequence[int], capacity_tokens: int, block_size: int) -> float:
        k = reference.paged_admissions(seq_lens, capacity_tokens, block_size)
        slots = sum(_cdiv(n, block_size) * block_size for n in seq_lens[:k])
        return 1 - sum(seq_lens[:k]) / slots if k else 0.0


def _call(module: ModuleType, fn: str, *args: object) -> object:
    # A copy, so a learner's function that sorts or pops the stream cannot fool the next call.
    args = tuple(list(a) if isinstance(a, list) else a for a in args)
    return getattr(module, fn)(*args)


def _expect(module: ModuleType, fn: str, args: tuple[object, ...], why: str) -> None:
    want = getattr(reference, fn)(*args)
    got = _call(module, fn, *args)
    shown = ", ".join(_short(a) for a in args)
    if isinstance(want, int):
        if isinstance(got, bool) or not isinstance(got, int) or got != want:
            raise CheckFailed(f"{fn}({shown}) returned {got!r}, expected {want} ({why})")
    else:
        if not isinstance(got, (int, float)) or abs(float(got) - want) > 1e-9:
            raise CheckFailed(f"{fn}({shown}) returned {got!r}, expected {want:.6f} ({why})")


def _short(a: object) -> str:
    if isinstance(a, list) and len(a) > 6:
        return f"[{', '.join(map(str, a[:4]))}, ... {len(a)} requests]"
    return repr(a)


COURSE = [192] * 100  # the lab's stream: prompt 64 + output 128, on 8 x 2048 slots


def _course_numbers(m: ModuleType) -> None:
    _expect(m, "contiguous_admissions", (COURSE, 16384, 2048), "16,384 // 2,048 = 8")
    _expect(m, "paged_admissions", (COURSE, 16384, 16), "1,024 blocks / 12 per request = 85")
    _expect(m, "contiguous_waste", (COURSE, 16384, 2048), "1 - 192 / 2,048")
    _expect(m, "paged_waste", (COURSE, 16384, 16), "192 tokens fill 12 blocks exactly")


def _partial_blocks(m: ModuleType) -> None:
    lens = [17, 33, 1, 16, 100, 15]
    _expect(m, "paged_admissions", (lens, 160, 16), "17 tokens need 2 blocks of 16")
    _expect(m, "paged_waste", (lens, 160, 16), "the last block of each request is partial")
    _expect(m, "paged_waste", ([31], 4096, 16), "31 tokens in 32 slots")


def _fcfs_stops(m: ModuleType) -> None:
    lens = [64, 64, 900, 8, 8, 8]  # the big one does not fit; FCFS does not skip it
    _expect(m, "paged_admissions", (lens, 512, 16), "FCFS stops at the first misfit")
    _expect(m, "paged_waste", (lens, 512, 16), "waste of the two admitted requests")
    _expect(m, "contiguous_admissions", ([10, 20, 30], 100, 40), "2 x 40 fit in 100")


def _everyone_fits(m: ModuleType) -> None:
    lens = [5, 9, 13]
    _expect(m, "paged_admissions", (lens, 1 << 20, 16), "a short stream is admitted whole")
    _expect(m, "contiguous_admissions", (lens, 1 << 20, 2048), "a short stream is admitted whole")
    _expect(m, "contiguous_waste", (lens, 1 << 20, 2048), "waste over the 3 admitted")


def _pool_is_whole_blocks(m: ModuleType) -> None:
    # 99 tokens fit 100 slots, but three 33-token requests need 9 blocks of a 6-block pool
    _expect(m, "paged_admissions", ([33, 33, 33], 100, 16), "a pool of 100 // 16 = 6 blocks")
    _expect(m, "paged_admissions", ([48, 48], 100, 16), "6 blocks hold two 3-block requests")


def _block_size_one(m: ModuleType) -> None:
    lens = [7, 300, 41, 2]
    _expect(m, "paged_waste", (lens, 10_000, 1), "block_size 1 wastes nothing")
    _expect(m, "paged_admissions", (lens, 349, 1), "349 slots hold 7 + 300 + 41, not the 2")


def _nothing_admitted(m: ModuleType) -> None:
    _expect(m, "contiguous_admissions", ([10], 1000, 2048), "a 2,048 reservation needs 2,048")
    _expect(m, "contiguous_waste", ([10], 1000, 2048), "defined as 0.0 with nothing admitted")
    _expect(m, "paged_waste", ([40], 16, 16), "defined as 0.0 with nothing admitted")


def _random_streams(m: ModuleType) -> None:
    rng = random.Random(2)
    for _ in range(60):
        max_len = rng.choice([512, 1024, 2048, 4096])
        lens = [rng.randint(1, max_len) for _ in range(rng.randint(1, 80))]
        cap = rng.randint(max_len, 40 * max_len)
        bs = rng.choice([1, 4, 8, 16, 32, 128])
        _expect(m, "contiguous_admissions", (lens, cap, max_len), "random stream")
        _expect(m, "contiguous_waste", (lens, cap, max_len), "random stream")
        _expect(m, "paged_admissions", (lens, cap, bs), "random stream")
        _expect(m, "paged_waste", (lens, cap, bs), "random stream")


def _headline_ratio(m: ModuleType) -> None:
    # the identity the lab's claim must obey: ratio ~ max_len / live, waste = 1 - live / max_len
    lens = [256] * 400
    c = _call(m, "contiguous_admissions", lens, 65536, 2048)
    p = _call(m, "paged_admissions", lens, 65536, 16)
    w = _call(m, "contiguous_waste", lens, 65536, 2048)
    if (c, p) != (32, 256) or not isinstance(w, float) or abs(w - 0.875) > 1e-9:
        raise CheckFailed(
            f"256-token requests on 65,536 slots: got {c} contiguous vs {p} paged admissions "
            f"and contiguous waste {w!r}; expected 32 vs 256 (8x) and 0.875 (1 - 256/2048): "
            "an 8x admission ratio comes with 87.5% waste, not 94%"
        )


def _check(
    name: str, summary: str, needs: tuple[str, ...], fn: Callable[[ModuleType], None]
) -> Check:
    return Check(name=name, lab="lab02", summary=summary, needs=needs, run=fn)


CHECKS: dict[str, tuple[Check, ...]] = {
    "lab02": (
        _check(
            "course_stream",
            "the lab's stream: 8 contiguous vs 85 paged",
            CONTIGUOUS + PAGED,
            _course_numbers,
        ),
        _check(
            "partial_blocks", "a request takes cdiv(len, block_size) blocks", PAGED, _partial_blocks
        ),
        _check(
            "fcfs_no_skipping",
            "admission stops at the first request that does not fit",
            CONTIGUOUS + PAGED,
            _fcfs_stops,
        ),
        _check(
            "short_stream",
            "a stream shorter than memory is admitted whole",
            CONTIGUOUS + PAGED,
            _everyone_fits,
        ),
        _check(
            "whole_blocks",
            "memory is counted in whole blocks, not tokens",
            PAGED,
            _pool_is_whole_blocks,
        ),
        _check("block_size_one", "block_size 1 wastes nothing", PAGED, _block_size_one),
        _check(
            "nothing_admitted",
            "no admission: 0 requests, waste 0.0",
            CONTIGUOUS + PAGED,
            _nothing_admitted,
        ),
        _check(
            "random_streams",
            "60 seeded random streams agree with the model",
            CONTIGUOUS + PAGED,
            _random_streams,
        ),
        _check(
            "ratio_identity",
            "an 8x admission ratio means 87.5% contiguous waste",
            CONTIGUOUS + PAGED,
            _headline_ratio,
        ),
    )
}
