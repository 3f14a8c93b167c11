"""vLLM's start-up refusals, recomputed: a max-length request that does not fit.

- V0 (`worker/worker.py` ``raise_if_cache_size_invalid``): "The model's max seq len (L)
  is larger than the maximum number of tokens that can be stored in KV cache (N)", with
  N = num_gpu_blocks x block_size.
- V1 (`v1/core/kv_cache_utils.py` ``_check_enough_kv_cache_memory``): "To serve at least
  one request with the model's max seq len (L), (X GiB KV cache is needed, which is larger
  than the available KV cache memory (Y GiB). Based on the available memory, the
  estimated maximum model length is Z" (Z from PR #16168's bisection). X is the
  model's per-request blocks x bytes per block (the planner's `required_bytes`); for a
  dense model Z ~ L x Y / X.
"""

from __future__ import annotations

from dataclasses import replace

from capacity_planner.explain.logmodel import Carving, LogModel
from capacity_planner.explain.memory import half_unit
from capacity_planner.explain.parse import LogRun
from capacity_planner.explain.patterns import Fact
from capacity_planner.explain.types import Check, Status

__all__ = ["error_checks"]

GiB = 1 << 30


def _verdict(ok: bool) -> Status:
    return "consistent" if ok else "inconsistent"


def _v0_error(
    run: LogRun, blocks: int | None, block_size: int, block_bytes: int | None
) -> list[Check]:
    """V0: the error's token count is blocks x block_size."""
    seq_len, kv_tokens = run.get("error_max_seq_len"), run.get("error_kv_tokens")
    if kv_tokens is None or seq_len is None:
        return []
    tokens, line = int(kv_tokens.value), kv_tokens.line_no
    if blocks is not None:
        ok = blocks * block_size == tokens
        note = (f"max seq len {int(seq_len.value):,} > {tokens:,}: one max-length request does "
                "not fit, so V0 refuses to start") if ok else (
                "the error's token count is not blocks x block_size")  # fmt: skip
        return [Check("report", "V0 start-up error: KV tokens", f"{blocks:,} blocks x "
                      f"block_size {block_size}", f"{blocks * block_size:,}", f"{tokens:,}",
                      _verdict(ok), note, line)]  # fmt: skip
    if tokens % block_size:
        return []
    blocks = tokens // block_size
    checks = [Check("carve", "GPU blocks from the error",
                    f"error's {tokens:,} tokens / block_size {block_size}",
                    f"{blocks:,}", None, "derived",
                    "V0's error prints num_gpu_blocks x block_size", line)]  # fmt: skip
    if block_bytes is not None:
        checks.append(Check("carve", "KV memory of the smallest rank",
                            f"{blocks:,} blocks x {block_bytes:,} B",
                            f"{blocks * block_bytes / GiB:.2f} GiB", None, "derived",
                            "vLLM sizes every rank's pool by the rank with the least free "
                            "memory", line))  # fmt: skip
    return checks


def _v1_error(
    run: LogRun,
    block_size: int,
    needed_bytes: int | None,
    estimated: tuple[int, int] | None,
    available: Fact | None,
) -> list[Check]:
    """V1: the needed memory (with a model) and the estimated maximum length."""
    seq_len, needed = run.get("error_max_seq_len"), run.get("error_needed_gib")
    err_avail = run.get("error_available_gib")
    if needed is None or seq_len is None:
        return []
    checks = []
    length, need = int(seq_len.value), float(needed.value)
    if available is not None and err_avail is not None:
        diff = abs(float(available.value) - float(err_avail.value))
        ok = diff <= half_unit(available) + half_unit(err_avail) + 1e-9
        checks.append(Check("report", "V1 start-up error: available",
                            "'Available KV cache memory' line", available.literal + " GiB",
                            err_avail.literal + " GiB", _verdict(ok),
                            None if ok else "the error comes from another rank or start-up",
                            err_avail.line_no))  # fmt: skip
    if needed_bytes is not None:
        exp = needed_bytes / GiB
        ok = abs(exp - need) <= half_unit(needed) + 1e-9
        checks.append(Check("report", "V1 start-up error: KV needed",
                            f"the model's per-request blocks at {length:,} tokens x bytes "
                            "per block (planner)", f"{exp:.2f} GiB", needed.literal + " GiB",
                            _verdict(ok), None if ok else "another page size, block size or "
                            "max_num_batched_tokens (sliding-window layers count it)",
                            needed.line_no))  # fmt: skip
    estimate = run.get("error_estimated_max_len")
    if estimate is None or err_avail is None or need <= 0:
        return checks
    if estimated is not None:
        lo, hi = estimated
        ok = lo - block_size <= int(estimate.value) <= hi + block_size
        checks.append(Check("report", "V1 start-up error: estimated max length",
                            f"planner's bisection over max_model_len at {err_avail.literal} GiB",
                            f"{lo:,}" if lo == hi else f"{lo:,}..{hi:,}",
                            f"{int(estimate.value):,}", _verdict(ok), None if ok else
                            "another page size, block size or max_num_batched_tokens",
                            estimate.line_no))  # fmt: skip
        return checks
    avail = float(err_avail.value)
    pred = length * avail / need
    # Both GiB figures are rounded; allow their relative error plus one block.
    tol = pred * (half_unit(needed) / need + half_unit(err_avail) / max(avail, 1e-9)) + block_size
    ok = abs(pred - int(estimate.value)) <= tol
    checks.append(Check("report", "V1 start-up error: estimated max length",
                        f"{length:,} x {err_avail.literal} / {needed.literal} (dense: KV grows "
                        "linearly with length)", f"~{pred:,.0f}", f"{int(estimate.value):,}",
                        _verdict(ok), None if ok else "KV per token is not constant: a "
                        "sliding-window or hybrid model, whose fixed per-request cost vLLM's "
                        "bisection accounts for", estimate.line_no))  # fmt: skip
    return checks


def error_checks(
    run: LogRun,
    blocks: int | None,
    block_size: int,
    model: LogModel | None,
    how: Carving,
    available: Fact | None,
) -> list[Check]:
    """Checks of the V0 and V1 start-up errors a run ended with."""
    block_bytes = needed = None
    estimated: tuple[int, int] | None = None
    seq_len, err_avail = run.get("error_max_seq_len"), run.get("error_available_gib")
    if model is not None:
        length = None if seq_len is None else int(seq_len.value)
        at_length = replace(how, max_model_len=length or how.max_model_len)
        carved = model.try_carve(GiB, at_length)
        if not isinstance(carved, str):
            block_bytes, needed = carved.bytes_per_block, carved.required_bytes
        if err_avail is not None:
            half = half_unit(err_avail)
            low = model.try_carve(int((float(err_avail.value) - half) * GiB), at_length)
            high = model.try_carve(int((float(err_avail.value) + half) * GiB), at_length)
            if (
                not isinstance(low, str)
                and not isinstance(high, str)
                and low.estimated_max_model_len
                and high.estimated_max_model_len
            ):
                estimated = (low.estimated_max_model_len, high.estimated_max_model_len)
    return _v0_error(run, blocks, block_size, block_bytes) + _v1_error(
        run, block_size, needed, estimated, available
    )
