"""Recurrent-state shapes of Mamba / linear-attention mixers, read from config.json.

The shapes are what vLLM's `MambaStateShapeCalculator` allocates per layer
(`vllm/model_executor/layers/mamba/mamba_utils.py`): a convolution state over the mixer's
input channels and the SSM / delta-rule state; the first axis of each is split by tensor
parallelism. Parameter counts are approximate (projections only), for the weight estimate.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from capacity_planner.model.fields import get_field, require_int
from capacity_planner.model.parts import MambaState

__all__ = ["gated_delta_net_state", "mamba1_state", "mamba2_state"]


def gated_delta_net_state(cfg: Mapping[str, Any], hidden: int) -> MambaState:
    """Qwen3-Next style gated delta net: conv state + (v_heads, k_dim, v_dim) state."""
    nk = require_int(cfg, "linear_num_key_heads")
    nv = require_int(cfg, "linear_num_value_heads")
    dk = require_int(cfg, "linear_key_head_dim")
    dv = require_int(cfg, "linear_value_head_dim")
    kernel = require_int(cfg, "linear_conv_kernel_dim")
    conv_dim = 2 * nk * dk + nv * dv
    params = hidden * (conv_dim + nv * dv + 2 * nv) + conv_dim * kernel + nv * dv * hidden
    return MambaState("gated_delta_net", (((conv_dim, kernel - 1), 0), ((nv, dk, dv), 0)), params)


def mamba1_state(cfg: Mapping[str, Any], hidden: int) -> MambaState:
    """Mamba-1 (Jamba): conv state (d_inner, d_conv-1) and SSM state (d_inner, d_state)."""
    d_state = int(get_field(cfg, "mamba_d_state", "state_size", default=16))
    d_conv = int(get_field(cfg, "mamba_d_conv", "conv_kernel", default=4))
    expand = int(get_field(cfg, "mamba_expand", "expand", default=2))
    d_inner = expand * hidden
    dt_rank = int(get_field(cfg, "mamba_dt_rank", "time_step_rank", default=math.ceil(hidden / 16)))
    params = (
        hidden * 2 * d_inner
        + d_inner * d_conv
        + d_inner * (dt_rank + 2 * d_state)
        + dt_rank * d_inner
        + d_inner * d_state
        + d_inner * hidden
    )
    return MambaState("mamba1", (((d_inner, d_conv - 1), 0), ((d_inner, d_state), 0)), params)


def mamba2_state(cfg: Mapping[str, Any], hidden: int) -> MambaState:
    """Mamba-2 (Bamba, NemotronH, Granite-4.0-H): conv over x|B|C and (heads, head_dim, d_state)."""
    d_state = int(get_field(cfg, "mamba_d_state", "ssm_state_size", "state_size", default=128))
    d_conv = int(get_field(cfg, "mamba_d_conv", "conv_kernel", default=4))
    n_groups = int(get_field(cfg, "mamba_n_groups", "n_groups", default=1))
    n_heads = get_field(cfg, "mamba_n_heads", "mamba_num_heads")
    head_dim = get_field(cfg, "mamba_d_head", "mamba_head_dim")
    if n_heads is None or head_dim is None:
        expand = int(get_field(cfg, "mamba_expand", "expand", default=2))
        head_dim = int(head_dim or 64)
        n_heads = expand * hidden // head_dim
    d_inner = int(n_heads) * int(head_dim)
    conv_dim = d_inner + 2 * n_groups * d_state
    params = hidden * (2 * d_inner + 2 * n_groups * d_state + int(n_heads)) + conv_dim * d_conv
    params += d_inner * hidden
    return MambaState(
        "mamba2",
        (((conv_dim, d_conv - 1), 0), ((int(n_heads), int(head_dim), d_state), 0)),
        params,
    )
