"""The token-balanced (stream) decode kernel on tiny shapes, against float64 attention.

Program counts are forced so that one program spans several sequences, one sequence spans
several programs, ranges start and end mid-block, and empty sequences sit anywhere; the
caches are poisoned as in ``test_triton.py``. Interpreter on CPU, native on CUDA.
"""

from __future__ import annotations

import os

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from paged_attn_kernels import _triton_decode as dec  # noqa: E402

try:  # tests/ may or may not be a package
    from .test_triton_cases import make_case, rel_err
except ImportError:
    from test_triton_cases import make_case, rel_err  # type: ignore[no-redef]

pytestmark = pytest.mark.triton
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def _run_stream(case, programs: int) -> torch.Tensor:
    out = torch.full_like(case.query, float("nan"))
    dec._LAUNCH_OVERRIDES["stream_programs"] = programs
    try:
        plan = dec.plan_splits(case.query, case.key_cache, case.block_table)
        assert plan.stream_programs == programs
        dec.paged_attention_triton(
            case.query,
            case.key_cache,
            case.value_cache,
            case.block_table,
            case.seq_lens,
            case.scale,
            out,
        )
    finally:
        dec._LAUNCH_OVERRIDES.pop("stream_programs", None)
    return out


@pytest.mark.parametrize("programs", [1, 2, 3, 7, 40])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
def test_stream_matches_float64(programs, dtype):
    case = make_case(
        num_seqs=5,
        num_heads=8,
        num_kv_heads=2,
        head_dim=64,
        block_size=8,
        max_blocks=12,
        dtype=dtype,
        device=DEVICE,
        seq_lens=[90, 0, 3, 61, 17],
    )
    out = _run_stream(case, programs)
    assert torch.equal(out[1].cpu(), torch.zeros_like(out[1].cpu()))
    assert rel_err(out, case.reference()) < (2e-6 if dtype == torch.float32 else 2e-3)


def test_stream_all_empty_gives_zeros():
    case = make_case(
        num_seqs=2,
        num_heads=4,
        num_kv_heads=4,
        head_dim=32,
        block_size=16,
        max_blocks=2,
        dtype=torch.float32,
        device=DEVICE,
        seq_lens=[0, 0],
    )
    out = _run_stream(case, 3)
    assert torch.equal(out.cpu(), torch.zeros_like(out.cpu()))


def test_stream_plan_is_opt_in():
    def plan(num_seqs: int, max_blocks: int) -> dec.SplitPlan:
        q = torch.empty((num_seqs, 32, 128), dtype=torch.float16, device="meta")
        kc = torch.empty((16, 16, 8, 128), dtype=torch.float16, device="meta")
        bt = torch.empty((num_seqs, max_blocks), dtype=torch.int32, device="meta")
        return dec.plan_splits(q, kc, bt)

    assert plan(64, 2048).stream_programs == 0  # measured slower: the grid kernel is default
    dec._LAUNCH_OVERRIDES["stream"] = 2
    try:
        assert plan(64, 2048).stream_programs == 33  # 2 x 132 SMs over 8 KV heads
        assert plan(1, 32).stream_programs == 2  # capped at one program per 256 tokens
        forced = dec.plan_splits(*_meta(), num_splits=4)
        assert forced.stream_programs == 0 and forced.num_splits == 4
    finally:
        dec._LAUNCH_OVERRIDES.pop("stream", None)


def _meta() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    q = torch.empty((8, 32, 128), dtype=torch.float16, device="meta")
    kc = torch.empty((16, 16, 8, 128), dtype=torch.float16, device="meta")
    bt = torch.empty((8, 2048), dtype=torch.int32, device="meta")
    return q, kc, bt


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lens=st.lists(st.integers(0, 70), min_size=1, max_size=4),
    programs=st.integers(1, 9),
    block_size=st.sampled_from([8, 16]),
)
def test_stream_property(lens, programs, block_size):
    case = make_case(
        num_seqs=len(lens),
        num_heads=4,
        num_kv_heads=2,
        head_dim=32,
        block_size=block_size,
        max_blocks=-(-70 // block_size),
        dtype=torch.float32,
        device=DEVICE,
        seq_lens=lens,
    )
    out = _run_stream(case, programs)
    ref = case.reference()
    if float(ref.norm()) == 0.0:
        assert torch.equal(out.cpu(), torch.zeros_like(out.cpu()))
    else:
        assert rel_err(out, ref) < 2e-6
