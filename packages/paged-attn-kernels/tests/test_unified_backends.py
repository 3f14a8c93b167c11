"""Variable-length paged attention on the CPU backends (numpy oracle, numba) against the
dense float64 reference: the four query shapes alone and mixed, the four score modifiers
alone and together, GQA/MHA/MQA, storage dtypes, poisoned slots, plan reuse."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paged_attn_kernels import _dtypes as dt
from paged_attn_kernels.unified import plan_unified, unified_attention

try:  # tests/ may or may not be a package
    from ._unified_cases import MIXED, make_varlen_case, rel_err
except ImportError:
    from _unified_cases import MIXED, make_varlen_case, rel_err  # type: ignore[no-redef]

BACKENDS = ["numpy", pytest.param("numba", marks=pytest.mark.filterwarnings("ignore"))]
SLOPES = np.array([0.5, 0.25, 0.125, 0.0625])
MODS = {
    "plain": {},
    "window": {"sliding_window": 6},
    "softcap": {"soft_cap": 1.5},
    "sinks": {"sinks": np.array([-1.0, 0.5, 2.0, 4.0])},
    "alibi": {"alibi_slopes": SLOPES},
    "all": {
        "sliding_window": 9,
        "soft_cap": 3.0,
        "sinks": np.array([0.3, -2.0, 1.0, 0.0]),
        "alibi_slopes": SLOPES,
    },
}
SHAPES = {
    "prefill": [(0, 21), (0, 5), (0, 1)],
    "chunked": [(13, 9), (40, 17)],
    "decode": [(3, 1), (0, 1), (31, 1), (16, 1)],
    "verify": [(12, 2), (29, 8), (7, 4)],
    "mixed": MIXED,
}


def _run(case, backend, **kw):
    return unified_attention(
        case.query, case.key_cache, case.value_cache, *case.layout, backend=backend,
        **case.mod_args, **kw,
    )  # fmt: skip


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mods", list(MODS), ids=list(MODS))
@pytest.mark.parametrize("shape", list(SHAPES), ids=list(SHAPES))
def test_matches_dense_reference(backend, mods, shape):
    window = MODS[mods].get("sliding_window")
    case = make_varlen_case(SHAPES[shape], poison_window=window, pad_tokens=1, **MODS[mods])
    out = _run(case, backend)
    assert np.isfinite(out).all()
    assert rel_err(out, case.dense()) < 1e-6
    assert not out[-1].any()  # the padding row is zero


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("heads", "kv_heads", "head_dim", "block_size"),
    [(4, 4, 8, 1), (8, 2, 16, 4), (6, 1, 12, 8), (6, 2, 32, 16), (3, 3, 16, 5)],
    ids=["mha-bs1", "gqa4", "mqa6", "gqa3-bs16", "mha-bs5"],
)
def test_head_layouts(backend, heads, kv_heads, head_dim, block_size):
    slopes = np.linspace(0.05, 0.6, heads)
    case = make_varlen_case(
        MIXED, num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim,
        block_size=block_size, sliding_window=11, alibi_slopes=slopes, seed=3,
    )  # fmt: skip
    assert rel_err(_run(case, backend), case.dense()) < 1e-6


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("kind", "tol"),
    [(dt.FLOAT64, 1e-12), (dt.FLOAT16, 1e-3), (dt.BFLOAT16, 1e-5), (dt.FP8_E4M3, 1e-5)],
    ids=["f64", "f16", "bf16", "fp8"],
)
def test_storage_dtypes(backend, kind, tol):
    ml = pytest.importorskip("ml_dtypes")
    scales = {"k_scale": 0.37, "v_scale": 1.9} if kind == dt.FP8_E4M3 else {}
    case = make_varlen_case(MIXED, kind=kind, sinks=np.zeros(4), soft_cap=4.0, **scales)
    kc, vc, q = case.key_cache, case.value_cache, case.query
    if kind == dt.BFLOAT16:
        kc, vc = kc.view(ml.bfloat16), vc.view(ml.bfloat16)
        q = dt.encode_bf16(q).view(ml.bfloat16)
    elif kind == dt.FLOAT16:
        q = q.astype(np.float16)
    elif kind == dt.FP8_E4M3:
        kc, vc = kc.view(ml.float8_e4m3fn), vc.view(ml.float8_e4m3fn)
    out = unified_attention(q, kc, vc, *case.layout, backend=backend, **case.mod_args, **scales)
    assert out.dtype == q.dtype
    # the query's own rounding (bf16 / fp16) is in both; the output's is the tolerance
    if kind == dt.BFLOAT16:
        case.query = np.asarray(dt.decode_bf16(dt.encode_bf16(case.query)), np.float64)
    out_f = dt.decode_bf16(out.view(np.uint16)) if kind == dt.BFLOAT16 else out
    bound = {dt.BFLOAT16: 5e-3, dt.FLOAT16: 1e-3}.get(kind, tol)
    assert rel_err(out_f, case.dense()) < bound


@pytest.mark.parametrize("backend", BACKENDS)
def test_torch_cpu_tensors_and_out(backend):
    torch = pytest.importorskip("torch")
    case = make_varlen_case(MIXED, pad_tokens=2, sliding_window=4)
    t = [torch.from_numpy(a) for a in (case.query, case.key_cache, case.value_cache, *case.layout)]
    out = torch.full_like(t[0], float("nan"))
    got = unified_attention(*t, backend=backend, sliding_window=4, out=out)
    assert got is out
    assert rel_err(out.numpy(), case.dense()) < 1e-6
    assert not out[-2:].any()


@pytest.mark.parametrize("backend", BACKENDS)
def test_plan_once_run_per_layer(backend):
    """One plan, two 'layers' with their own caches and modifiers, equals one-shot calls."""
    a = make_varlen_case(MIXED, seed=1, sliding_window=5)
    b = make_varlen_case(MIXED, seed=2, soft_cap=2.0, sinks=np.ones(4))
    b.block_table, b.query_start_loc, b.seq_lens = a.block_table, a.query_start_loc, a.seq_lens
    b = make_varlen_case(MIXED, seed=1, soft_cap=2.0, sinks=np.ones(4))  # same layout as a
    b.query = b.query * 0.5
    plan = plan_unified(a.query, a.key_cache, *a.layout, backend=backend)
    assert plan.num_seqs == len(MIXED)
    for case in (a, b):
        out = plan.run(case.query, case.key_cache, case.value_cache, **case.mod_args)
        assert rel_err(out, case.dense()) < 1e-6
        np.testing.assert_array_equal(out, _run(case, backend))


def test_numba_matches_oracle_closely():
    case = make_varlen_case(MIXED, kind=dt.FLOAT64, **MODS["all"])
    ours = _run(case, "numba")
    oracle = _run(case, "numpy")
    assert rel_err(ours, oracle) < 1e-12


def test_scale_argument():
    case = make_varlen_case(MIXED)
    for backend in ("numpy", "numba"):
        out = _run(case, backend, scale=0.05)
        assert rel_err(out, case.dense(scale=0.05)) < 1e-6


_seq = st.tuples(st.integers(0, 40), st.integers(0, 12))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seqs=st.lists(_seq, min_size=1, max_size=6),
    group=st.sampled_from([1, 2, 3]),
    kv_heads=st.sampled_from([1, 2]),
    block_size=st.sampled_from([1, 3, 4, 16]),
    window=st.none() | st.integers(1, 30),
    cap=st.none() | st.floats(0.5, 20.0),
    use_sinks=st.booleans(),
    use_alibi=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_numba_property(seqs, group, kv_heads, block_size, window, cap, use_sinks, use_alibi, seed):
    heads = group * kv_heads
    rng = np.random.default_rng(seed)
    mods = {
        "sliding_window": window,
        "soft_cap": cap,
        "sinks": rng.normal(size=heads) * 2 if use_sinks else None,
        "alibi_slopes": rng.uniform(0, 1, heads) if use_alibi else None,
    }
    case = make_varlen_case(
        seqs, num_heads=heads, num_kv_heads=kv_heads, head_dim=8, block_size=block_size,
        poison_window=window, seed=seed, **{k: v for k, v in mods.items() if v is not None},
    )  # fmt: skip
    out = _run(case, "numba")
    assert np.isfinite(out).all()
    assert rel_err(out, case.dense()) < 1e-5


@pytest.mark.parametrize("backend", BACKENDS)
def test_window_reads_only_window_blocks(backend):
    """Blocks wholly before the first token's window are replaced by the all-NaN padding
    block in the table: a windowed call never reads them, an unwindowed one does."""
    seqs = [(61, 1), (40, 3), (70, 9)]
    case = make_varlen_case(seqs, sliding_window=8, poison_window=8, block_size=4)
    for i, (ctx, _) in enumerate(seqs):
        trap = case.block_table[i, -1]
        assert np.isnan(case.key_cache[trap]).all()
        case.block_table[i, : (ctx - 8 + 1) // 4] = trap
    assert rel_err(_run(case, backend), case.dense()) < 1e-6
    with np.errstate(invalid="ignore"):
        leak = unified_attention(
            case.query, case.key_cache, case.value_cache, *case.layout, backend=backend
        )
    assert np.isnan(leak).any()
