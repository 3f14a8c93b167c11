# mypy: disable-error-code="no-untyped-def,untyped-decorator"
# (a Triton kernel: only tl.constexpr parameters carry annotations)
"""A dense causal FlashAttention-2 forward in Triton: the floor our paged prefill is held to.

Benchmark-side only (``sweep_gpu.py --sections prefill-floor``). It runs the same algorithm
as the varlen kernel's prefill class (online softmax over key tiles, base-2 exponentials,
masks only on the diagonal tiles, ``tl.dot`` on tensor cores) on contiguous
``[batch * heads, tokens, head_dim]`` tensors, with no block table, no GQA row packing and
no ragged batch. Timed beside torch SDPA's best backend and our kernel, it splits the gap
to SDPA into what Triton's FlashAttention-2 form reaches on this GPU and what paging costs
on top.

    TRITON_INTERPRET=1 python benchmarks/prefill_floor.py   # checks it against torch on CPU
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl


@triton.jit
def _dense_causal_kernel(
    q_ptr,  # [batch * heads, tokens, HEAD_DIM]
    k_ptr,
    v_ptr,
    o_ptr,
    qk_scale,  # softmax scale * log2(e)
    stride_bh,
    stride_t,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    HEAD_DIM: tl.constexpr,
):
    start_m = tl.program_id(0) * BLOCK_M
    base = tl.program_id(1).to(tl.int64) * stride_bh
    offs_m = start_m + tl.arange(0, BLOCK_M)
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    q = tl.load(q_ptr + base + offs_m[:, None] * stride_t + offs_d[None, :])
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    # keys every row sees, then the diagonal tiles with the causal mask
    for phase in tl.static_range(2):
        lo = 0 if phase == 0 else start_m
        hi = start_m if phase == 0 else start_m + BLOCK_M
        for start_n in range(lo, hi, BLOCK_N):
            keys = start_n + offs_n
            k = tl.load(k_ptr + base + keys[:, None] * stride_t + offs_d[None, :])
            v = tl.load(v_ptr + base + keys[:, None] * stride_t + offs_d[None, :])
            s = tl.dot(q, tl.trans(k)) * qk_scale
            if phase == 1:
                s = tl.where(offs_m[:, None] >= keys[None, :], s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, axis=1))
            alpha = tl.exp2(m_i - m_new)
            p = tl.exp2(s - m_new[:, None])
            l_i = l_i * alpha + tl.sum(p, axis=1)
            acc = tl.dot(p.to(v.dtype), v, acc * alpha[:, None])
            m_i = m_new
    out = acc / l_i[:, None]
    tl.store(
        o_ptr + base + offs_m[:, None] * stride_t + offs_d[None, :], out.to(o_ptr.dtype.element_ty)
    )


def dense_causal(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block_m: int = 128,
                 block_n: int = 64, num_warps: int = 8, num_stages: int = 3) -> torch.Tensor:  # fmt: skip
    """Causal attention of ``[B, H, N, D]`` tensors (K/V already expanded to ``H`` heads);
    ``N`` a multiple of ``block_m``, ``block_m`` a multiple of ``block_n``."""
    b, h, n, d = q.shape
    if n % block_m or block_m % block_n:
        raise ValueError(f"tokens {n} must be a multiple of block_m {block_m}, and block_m of "
                         f"block_n {block_n}")  # fmt: skip
    q3, k3, v3 = (x.reshape(b * h, n, d).contiguous() for x in (q, k, v))
    out = torch.empty_like(q3)
    grid = (n // block_m, b * h)
    _dense_causal_kernel[grid](
        q3, k3, v3, out, 1.4426950408889634 / math.sqrt(d), q3.stride(0), q3.stride(1),
        BLOCK_M=block_m, BLOCK_N=block_n, HEAD_DIM=d, num_warps=num_warps,
        num_stages=num_stages,
    )  # fmt: skip
    return out.view(b, h, n, d)


def _check() -> None:
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 64, 16) for _ in range(3))
    got = dense_causal(q, k, v, block_m=32, block_n=16, num_warps=4)
    want = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    err = float((got - want).norm() / want.norm())
    print(f"dense causal kernel vs torch SDPA: relative error {err:.1e}")
    if err > 1e-5:
        raise SystemExit("dense_causal disagrees with torch")


if __name__ == "__main__":
    _check()
