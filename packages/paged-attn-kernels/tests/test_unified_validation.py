"""Bad input to the variable-length API: a KernelInputError naming the parameter and its
allowed range, raised before anything is written (``out`` is left exactly as it was)."""

from __future__ import annotations

import numpy as np
import pytest

from paged_attn_kernels import KernelDtypeError, KernelInputError, plan_unified, unified_attention

try:
    from ._unified_cases import MIXED, make_varlen_case
except ImportError:
    from _unified_cases import MIXED, make_varlen_case  # type: ignore[no-redef]


@pytest.fixture
def case():
    return make_varlen_case(MIXED, pad_tokens=1)


def _call(case, **kw):
    layout = dict(
        block_table=case.block_table, query_start_loc=case.query_start_loc,
        seq_lens=case.seq_lens,
    )  # fmt: skip
    layout.update({k: kw.pop(k) for k in list(kw) if k in layout})
    kw.setdefault("backend", "numpy")
    return unified_attention(
        case.query, case.key_cache, case.value_cache, layout["block_table"],
        layout["query_start_loc"], layout["seq_lens"], **kw,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda c: {"query_start_loc": c.query_start_loc + 1}, r"query_start_loc\[0\] must be 0"),
        (lambda c: {"query_start_loc": c.query_start_loc[::-1].copy()}, "query_start_loc"),
        (
            lambda c: {"query_start_loc": np.r_[c.query_start_loc[:-1], 10_000].astype(np.int32)},
            r"query_start_loc\[-1\]=10000 is past the query's num_tokens",
        ),
        (lambda c: {"query_start_loc": c.query_start_loc[:-1]}, r"\[num_seqs \+ 1\]"),
        (lambda c: {"seq_lens": np.zeros_like(c.seq_lens)}, r"seq_lens\[0\]=0 is shorter"),
        (lambda c: {"seq_lens": c.seq_lens + 100}, r"seq_lens\[0\]=113 is outside \[0, "),
        (lambda c: {"seq_lens": c.seq_lens.astype(np.float32)}, "seq_lens must hold integers"),
        (
            lambda c: {
                "block_table": np.where(
                    c.block_table == c.block_table[0, 0], 999, c.block_table
                ).astype(np.int32)
            },
            r"block_table\[0, 0\]=999 is outside",
        ),
        (lambda c: {"sliding_window": 0}, "sliding_window must be an int >= 1"),
        (lambda c: {"sliding_window": 2.5}, "sliding_window must be an int >= 1"),
        (lambda c: {"soft_cap": -1.0}, "soft_cap must be a finite float > 0"),
        (lambda c: {"soft_cap": float("inf")}, "soft_cap must be a finite float > 0"),
        (lambda c: {"sinks": np.zeros(3)}, r"sinks must have shape \[num_heads=4\]"),
        (lambda c: {"sinks": np.array([0, 0, np.nan, 0])}, "sinks must be finite"),
        (lambda c: {"alibi_slopes": np.zeros((4, 1))}, "alibi_slopes must have shape"),
        (lambda c: {"alibi_slopes": np.array(["a"] * 4)}, "alibi_slopes must hold floats"),
        (lambda c: {"scale": 0.0}, "scale must be a finite non-zero float"),
        (lambda c: {"k_scale": 2.0}, "k_scale applies to fp8 caches only"),
        (lambda c: {"backend": "cuda"}, "backend='cuda' is not one of"),
    ],
)
def test_rejects_and_leaves_out_unchanged(case, change, match):
    out = np.full_like(case.query, 7.0)
    with pytest.raises(KernelInputError, match=match):
        _call(case, out=out, **change(case))
    assert (out == 7.0).all()


def test_shape_and_dtype_errors(case):
    with pytest.raises(KernelInputError, match="query must be 3-D"):
        unified_attention(case.query[0], case.key_cache, case.value_cache, *case.layout)
    with pytest.raises(KernelInputError, match="multiple of num_kv_heads"):
        unified_attention(case.query[:, :3], case.key_cache, case.value_cache, *case.layout)
    with pytest.raises(KernelDtypeError, match="query dtype float64 must equal the cache"):
        unified_attention(case.query.astype(np.float64), case.key_cache, case.value_cache,
                          *case.layout)  # fmt: skip
    with pytest.raises(KernelDtypeError, match="out must have query's shape"):
        unified_attention(case.query, case.key_cache, case.value_cache, *case.layout,
                          out=np.zeros((1, 4, 16), np.float32))  # fmt: skip
    with pytest.raises(TypeError, match="query must be a numpy array or a torch tensor"):
        unified_attention([1.0], case.key_cache, case.value_cache, *case.layout)


def test_run_checks_the_plan(case):
    plan = plan_unified(case.query, case.key_cache, *case.layout, backend="numpy")
    with pytest.raises(KernelInputError, match=r"query must be .* as planned"):
        plan.run(case.query[:-1], case.key_cache, case.value_cache)
    with pytest.raises(KernelInputError, match=r"value_cache must be .* as planned"):
        plan.run(case.query, case.key_cache, case.value_cache[:-1])
    with pytest.raises(KernelInputError, match="block_m must be 16, 32, 64 or 128"):
        plan_unified(case.query, case.key_cache, *case.layout, block_m=48)
    with pytest.raises(KernelInputError, match="tile_n must be"):
        plan_unified(case.query, case.key_cache, *case.layout, tile_n=True)
    with pytest.raises(KernelInputError, match="validate must be 'metadata' or 'full'"):
        plan_unified(case.query, case.key_cache, *case.layout, validate="sometimes")
    with pytest.raises(KernelInputError, match="split_tokens must be an int >= 0"):
        plan_unified(case.query, case.key_cache, *case.layout, split_tokens=-1)
