"""Builders shared by the Triton tests (no tests here): poisoned paged caches, a float64 reference.

Every cache built here holds NaN/inf wherever a correct kernel must not look: in blocks that
no sequence owns, in the slots of a sequence's last block past its ``seq_len``, and in the
blocks that block-table padding rows point at.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pytest

torch = pytest.importorskip(
    "torch", reason="needs torch; for a CPU-only build see the README (Installing)"
)


@dataclass
class PagedCase:
    query: torch.Tensor  # [num_seqs, num_heads, head_dim]
    key_cache: torch.Tensor  # [num_blocks, block_size, num_kv_heads, head_dim]
    value_cache: torch.Tensor
    block_table: torch.Tensor  # [num_seqs, max_blocks] int32
    seq_lens: torch.Tensor  # [num_seqs] int32
    scale: float

    @property
    def inputs(self) -> tuple[torch.Tensor, ...]:
        """``(query, key_cache, value_cache, block_table, seq_lens)``, in the kernel's order."""
        return (self.query, self.key_cache, self.value_cache, self.block_table, self.seq_lens)

    def poisoned_out(self) -> torch.Tensor:
        """An output buffer of NaN: any row the kernel fails to write shows up."""
        return torch.full_like(self.query, float("nan"))

    def decode(self, out: torch.Tensor | None = None, **kwargs: Any) -> torch.Tensor:
        """``paged_attention_triton`` on this case (``kwargs``: ``num_splits``, scales)."""
        from paged_attn_kernels._triton_decode import paged_attention_triton

        return paged_attention_triton(*self.inputs, self.scale, out, **kwargs)

    def reference(self) -> torch.Tensor:
        """float64 dense attention over each sequence's gathered K/V, on the CPU."""
        return reference_attention(*self.inputs, self.scale)


def reference_attention(
    query: torch.Tensor,
    key_cache: torch.Tensor,
    value_cache: torch.Tensor,
    block_table: torch.Tensor,
    seq_lens: torch.Tensor,
    scale: float,
    k_scale: float = 1.0,
    v_scale: float = 1.0,
) -> torch.Tensor:
    q = query.detach().cpu().double()
    kc = key_cache.detach().cpu().double() * k_scale
    vc = value_cache.detach().cpu().double() * v_scale
    bt = block_table.detach().cpu().long()
    num_seqs, num_heads, head_dim = q.shape
    block_size, num_kv = kc.shape[1], kc.shape[2]
    group = num_heads // num_kv
    out = torch.zeros((num_seqs, num_heads, head_dim), dtype=torch.float64)
    for b in range(num_seqs):
        n = int(seq_lens[b])
        if n == 0:
            continue
        ids = bt[b, : math.ceil(n / block_size)]
        k = kc[ids].reshape(-1, num_kv, head_dim)[:n].repeat_interleave(group, dim=1)
        v = vc[ids].reshape(-1, num_kv, head_dim)[:n].repeat_interleave(group, dim=1)
        s = torch.einsum("hd,nhd->hn", q[b], k) * scale
        out[b] = torch.einsum("hn,nhd->hd", torch.softmax(s, dim=-1), v)
    return out


def make_case(
    *,
    num_seqs: int | None = None,
    num_heads: int,
    num_kv_heads: int,
    head_dim: int,
    block_size: int,
    max_blocks: int,
    dtype: torch.dtype,
    device: str | torch.device,
    seed: int = 0,
    seq_lens: list[int] | None = None,
    spare_blocks: int = 3,
) -> PagedCase:
    """A poisoned paged case; ``num_seqs`` defaults to ``len(seq_lens)``, lengths are random
    in ``[1, max_blocks * block_size]`` when ``seq_lens`` is not given."""
    g = torch.Generator().manual_seed(seed)
    if num_seqs is None:
        if seq_lens is None:
            raise ValueError("make_case needs num_seqs or seq_lens")
        num_seqs = len(seq_lens)
    if seq_lens is None:
        seq_lens = torch.randint(1, max_blocks * block_size + 1, (num_seqs,), generator=g).tolist()
    owned = [math.ceil(n / block_size) for n in seq_lens]
    num_blocks = sum(owned) + spare_blocks
    shape = (num_blocks, block_size, num_kv_heads, head_dim)
    kc = torch.randn(shape, generator=g, dtype=torch.float32)
    vc = torch.randn(shape, generator=g, dtype=torch.float32)
    perm = torch.randperm(num_blocks, generator=g)
    spare = perm[sum(owned) :]
    kc[spare] = float("nan")
    vc[spare] = float("inf")
    bt = torch.empty((num_seqs, max_blocks), dtype=torch.int32)
    bt[:] = spare[0]  # padding rows point at a poisoned block
    pos = 0
    for b, n in enumerate(owned):
        bt[b, :n] = perm[pos : pos + n]
        pos += n
        tail = seq_lens[b] % block_size
        if tail:
            kc[int(perm[pos - 1]), tail:] = float("nan")
            vc[int(perm[pos - 1]), tail:] = float("-inf")
    q = torch.randn((num_seqs, num_heads, head_dim), generator=g)
    return PagedCase(
        query=q.to(dtype).to(device),
        key_cache=kc.to(dtype).to(device),
        value_cache=vc.to(dtype).to(device),
        block_table=bt.to(device),
        seq_lens=torch.tensor(seq_lens, dtype=torch.int32, device=device),
        scale=1.0 / math.sqrt(head_dim),
    )


def rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    o = out.detach().cpu().double()
    assert torch.isfinite(o).all(), "non-finite output: poison leaked or a row was not written"
    return float((o - ref).norm() / ref.norm())
