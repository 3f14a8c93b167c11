from __future__ import annotations

import pytest

from frag_sim import ConfigError, SyntheticWorkload, simulate_sharing


@pytest.fixture(scope="module")
def alpaca() -> object:
    return SyntheticWorkload.from_mix("alpaca", num_requests=200, rate=1.0).generate()


def test_no_sharing_with_one_sequence(alpaca: object) -> None:
    r = simulate_sharing(alpaca, "parallel", 1, num_requests=40)  # type: ignore[arg-type]
    assert r.saved == 0 and r.cow_copies == 0


def test_parallel_and_beam_savings_grow_with_width(alpaca: object) -> None:
    par = [
        simulate_sharing(alpaca, "parallel", w, num_requests=60).saved  # type: ignore[arg-type]
        for w in (2, 4, 6)
    ]
    beam = [
        simulate_sharing(alpaca, "beam", w, num_requests=60).saved  # type: ignore[arg-type]
        for w in (2, 4, 6)
    ]
    assert 0 < par[0] < par[1] < par[2] < 0.2  # paper, Alpaca: 6.1% .. 9.8%
    assert 0.25 < beam[0] < beam[1] < beam[2] < 0.75  # paper, Alpaca: 37.6% .. 55.2%
    assert all(b > p for b, p in zip(beam, par, strict=True))


def test_copy_on_write_copies_partial_tails(alpaca: object) -> None:
    r = simulate_sharing(alpaca, "parallel", 3, num_requests=30, block_size=16)  # type: ignore[arg-type]
    assert r.cow_copies > 0


@pytest.mark.parametrize(("mode", "width"), [("greedy", 2), ("beam", 0), ("parallel", True)])
def test_bad_arguments(alpaca: object, mode: str, width: int) -> None:
    with pytest.raises(ConfigError):
        simulate_sharing(alpaca, mode, width)  # type: ignore[arg-type]
