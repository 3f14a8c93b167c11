"""The Triton variable-length kernel on tiny shapes (interpreted on CPU, native on CUDA).

Every case poisons what the kernel must not read (unowned blocks, slots past a length,
block-table padding, positions outside every sliding window) and the output buffer, and
compares against the dense float64 reference. fp32 queries here (bf16 ``tl.dot`` is wrong
in the interpreter); bf16 runs in ``test_unified_triton_gpu.py``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # before the first @triton.jit
pytest.importorskip("triton")

from paged_attn_kernels import KernelDtypeError, KernelInputError  # noqa: E402
from paged_attn_kernels import _dtypes as dt  # noqa: E402
from paged_attn_kernels.unified import plan_unified as _plan_unified  # noqa: E402
from paged_attn_kernels.unified import unified_attention as _unified_attention  # noqa: E402

try:
    from ._unified_cases import MIXED, make_varlen_case, rel_err
except ImportError:
    from _unified_cases import MIXED, make_varlen_case, rel_err  # type: ignore[no-redef]

pytestmark = pytest.mark.triton
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
SLOPES = [0.5, 0.25, 0.125, 0.0625]
MODS = {
    "plain": {},
    "window": {"sliding_window": 6},
    "softcap": {"soft_cap": 1.5},
    "sinks": {"sinks": [-1.0, 0.5, 2.0, 4.0]},
    "alibi": {"alibi_slopes": SLOPES},
    "all": {"sliding_window": 9, "soft_cap": 3.0, "sinks": [0.3, -2.0, 1.0, 0.0],
            "alibi_slopes": SLOPES},
}  # fmt: skip


def plan_unified(*args, **kw):
    """The package's plan, pinned to the Triton backend (auto would pick numba on the CPU)."""
    return _plan_unified(*args, backend="triton", **kw)


def unified_attention(*args, **kw):
    return _unified_attention(*args, backend="triton", **kw)


def _t(a: np.ndarray):
    if a.dtype == np.uint8:
        return torch.from_numpy(a).to(DEVICE).view(torch.float8_e4m3fn)
    return torch.from_numpy(a).to(DEVICE)


def _device_mods(mod_args):
    return {
        k: torch.tensor(v, dtype=torch.float32, device=DEVICE) if isinstance(v, list) else v
        for k, v in mod_args.items()
    }


def _case(seqs=MIXED, **kw):
    mods = {k: (np.array(v) if isinstance(v, list) else v) for k, v in kw.pop("mods", {}).items()}
    return make_varlen_case(seqs, **mods, **kw)


# every modifier with the launch classes; forced tile heights with none and with all
CASES = [(m, None) for m in MODS] + [(m, bm) for m in ("plain", "all") for bm in (16, 64)]


@pytest.mark.parametrize(("mods", "block_m"), CASES, ids=[f"{m}-{bm}" for m, bm in CASES])
def test_matches_dense_reference(mods, block_m):
    window = MODS[mods].get("sliding_window")
    case = _case(mods=MODS[mods], poison_window=window, pad_tokens=2)
    q = _t(case.query)
    plan = plan_unified(q, _t(case.key_cache), *map(_t, case.layout), block_m=block_m, tile_n=16)
    out = torch.full_like(q, float("nan"))
    plan.run(q, _t(case.key_cache), _t(case.value_cache), out=out, **_device_mods(MODS[mods]))
    got = out.cpu().numpy()
    assert np.isfinite(got).all()
    assert rel_err(got, case.dense()) < 1e-5
    assert not got[-2:].any()  # padding rows are zeroed


@pytest.mark.parametrize(
    ("heads", "kv_heads", "head_dim", "block_size", "tile_n"),
    [(4, 4, 8, 1, 16), (6, 1, 24, 8, 32), (6, 2, 16, 16, 16), (8, 2, 32, 5, 16)],
    ids=["mha-bs1", "mqa6-d24", "gqa3-bs16", "gqa4-bs5"],
)
def test_head_layouts(heads, kv_heads, head_dim, block_size, tile_n):
    slopes = np.linspace(0.05, 0.6, heads)
    case = _case(
        num_heads=heads, num_kv_heads=kv_heads, head_dim=head_dim, block_size=block_size,
        sliding_window=7, alibi_slopes=slopes, poison_window=7, seed=5,
    )  # fmt: skip
    q = _t(case.query)
    plan = plan_unified(q, _t(case.key_cache), *map(_t, case.layout), tile_n=tile_n)
    out = plan.run(q, _t(case.key_cache), _t(case.value_cache), sliding_window=7,
                   alibi_slopes=torch.tensor(slopes, device=DEVICE))  # fmt: skip
    assert rel_err(out.cpu().numpy(), case.dense()) < 1e-5


def test_fp8_cache():
    case = _case(kind=dt.FP8_E4M3, k_scale=0.4, v_scale=1.7, mods=MODS["softcap"])
    q = _t(case.query)
    out = unified_attention(
        q, _t(case.key_cache), _t(case.value_cache), *map(_t, case.layout),
        soft_cap=1.5, k_scale=0.4, v_scale=1.7,
    )  # fmt: skip
    assert rel_err(out.cpu().numpy(), case.dense()) < 1e-5


def test_fp16():
    case = _case(kind=dt.FLOAT16, mods=MODS["sinks"])
    q = _t(case.query).half()
    out = unified_attention(
        q, _t(case.key_cache), _t(case.value_cache), *map(_t, case.layout),
        sinks=np.array(MODS["sinks"]["sinks"]),
    )  # fmt: skip
    assert out.dtype == torch.float16
    assert rel_err(out.float().cpu().numpy(), case.dense()) < 2e-3


@pytest.mark.filterwarnings("ignore:All-NaN slice")  # the interpreter's max over the leak
def test_window_reads_only_window_blocks():
    """Decode, verification and chunked prefill with a window over a longer context: every
    position before the first token's window is NaN, and the block-table entries of blocks
    wholly before it point at the all-NaN padding block, yet the answer is exact."""
    seqs = [(61, 1), (40, 3), (70, 9)]
    case = _case(seqs, sliding_window=8, poison_window=8, block_size=4)
    for i, (ctx, _) in enumerate(seqs):
        trap = case.block_table[i, -1]  # padding entry: a block no sequence owns, all NaN
        assert np.isnan(case.key_cache[trap]).all()
        case.block_table[i, : (ctx - 8 + 1) // 4] = trap
    q = _t(case.query)
    plan = plan_unified(q, _t(case.key_cache), *map(_t, case.layout), tile_n=16)
    out = plan.run(q, _t(case.key_cache), _t(case.value_cache), sliding_window=8)
    assert rel_err(out.cpu().numpy(), case.dense()) < 1e-5
    # the same table without the window reads the trap: the poison is live
    leak = plan.run(q, _t(case.key_cache), _t(case.value_cache))
    assert torch.isnan(leak).any()


def test_plan_reused_across_layers_and_modifiers():
    a = _case(seed=1)
    b = _case(seed=1, mods=MODS["all"])  # same layout (same seed), other modifiers
    q = _t(a.query)
    plan = plan_unified(q, _t(a.key_cache), *map(_t, a.layout), tile_n=16)
    for case, mods in ((a, {}), (b, MODS["all"]), (a, {})):
        out = plan.run(_t(case.query), _t(case.key_cache), _t(case.value_cache),
                       **_device_mods(mods))  # fmt: skip
        assert rel_err(out.cpu().numpy(), case.dense()) < 1e-5


def test_empty_and_zero_length_queries():
    case = _case([(5, 0), (0, 3), (9, 0)], pad_tokens=1)
    q = _t(case.query)
    out = unified_attention(q, _t(case.key_cache), _t(case.value_cache), *map(_t, case.layout))
    assert rel_err(out.cpu().numpy(), case.dense()) < 1e-5


@pytest.mark.parametrize(
    ("mods", "split_tokens"), [("plain", 16), ("window", 40), ("sinks", 16), ("all", 40)]
)
def test_split_keys_merge(mods, split_tokens):
    """Decode and verification items split their keys (FlashDecoding) and are merged: the
    sink joins one split's denominator, the window is shared out at run time."""
    window = MODS[mods].get("sliding_window")
    seqs = [(90, 1), (61, 3), (33, 8), (0, 1), (120, 2), (5, 40)]
    case = _case(seqs, mods=MODS[mods], poison_window=window, pad_tokens=1)
    q = _t(case.query)
    plan = plan_unified(q, _t(case.key_cache), *map(_t, case.layout), tile_n=16,
                        split_tokens=split_tokens)  # fmt: skip
    assert any(merge is not None for *_, merge in plan.launches)
    out = torch.full_like(q, float("nan"))
    plan.run(q, _t(case.key_cache), _t(case.value_cache), out, **_device_mods(MODS[mods]))
    assert rel_err(out.cpu().numpy(), case.dense()) < 1e-5


def test_split_rule_fills_a_large_device():
    """A batch of a few long decodes on many SMs splits; the same batch on few does not."""
    case = _case([(1500, 1), (1200, 1)], block_size=16)
    q, kc, vc = _t(case.query), _t(case.key_cache), _t(case.value_cache)
    layout = list(map(_t, case.layout))
    small = plan_unified(q, kc, *layout, num_sms=1)
    big = plan_unified(q, kc, *layout, num_sms=10_000)
    assert all(merge is None for *_, merge in small.launches)
    assert any(merge is not None for *_, merge in big.launches)
    for plan in (small, big):
        assert rel_err(plan.run(q, kc, vc).cpu().numpy(), case.dense()) < 1e-5
    never = plan_unified(q, kc, *layout, num_sms=10_000, split_tokens=0)
    assert all(merge is None for *_, merge in never.launches)


def test_is_an_attention_plan():
    from paged_attn_kernels import AttentionPlan

    case = _case()
    plan = plan_unified(_t(case.query), _t(case.key_cache), *map(_t, case.layout))
    assert isinstance(plan, AttentionPlan)


def test_fp8_cache_fp16_query():
    """16-bit queries over fp8 caches run fp16 dots with the scale folded into the query."""
    case = _case(kind=dt.FP8_E4M3, k_scale=0.4, v_scale=1.7, mods=MODS["all"])
    q = _t(case.query).half()
    case.query = q.float().cpu().numpy()
    args = _device_mods(MODS["all"])
    out = unified_attention(
        q, _t(case.key_cache), _t(case.value_cache), *map(_t, case.layout),
        k_scale=0.4, v_scale=1.7, **args,
    )  # fmt: skip
    assert out.dtype == torch.float16
    assert rel_err(out.float().cpu().numpy(), case.dense()) < 2e-3


def test_run_checks_tensors_against_the_plan():
    case = _case(pad_tokens=1)
    q, kc, vc = _t(case.query), _t(case.key_cache), _t(case.value_cache)
    plan = plan_unified(q, kc, *map(_t, case.layout))
    out = torch.full_like(q, 7.0)
    bad = [
        ({"query": q[:-1]}, KernelInputError, "query must be .* as planned"),
        ({"value_cache": vc[:-1]}, KernelInputError, "value_cache must be .* as planned"),
        ({"query": q.double()}, KernelDtypeError, "query dtype torch.float64"),
        ({"value_cache": vc.half()}, KernelDtypeError, "caches torch.float32/torch.float16"),
        ({"query": q.cpu().numpy()}, KernelDtypeError, "query must be a torch tensor"),
        ({"out": out[:, :2]}, KernelDtypeError, "out must have query's shape"),
        ({"k_scale": 0.5}, KernelInputError, "k_scale applies to fp8 caches only"),
        ({"sinks": torch.zeros(3)}, KernelInputError, r"sinks must have shape \[num_heads=4\]"),
        ({"sliding_window": -2}, KernelInputError, "sliding_window must be an int >= 1"),
        ({"scale": float("nan")}, KernelInputError, "scale must be a finite non-zero float"),
    ]
    for change, error, match in bad:
        args = {"query": q, "key_cache": kc, "value_cache": vc, "out": out, **change}
        with pytest.raises(error, match=match):
            plan.run(**args)
        assert (out == 7.0).all()  # nothing was written
