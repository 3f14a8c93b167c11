"""Phase 02 lab-03 (real vLLM blocks): a learner's capacity arithmetic, checked on paper.

The lab reads vLLM's start-up ritual (profile -> subtract -> carve) and asks to
sanity-check ``# GPU blocks`` and ``Maximum concurrency`` from the model's config. This
kit fixes the contract of that paper check. A learner's module defines::

    kv_bytes_per_token(config, kv_dtype_bytes, tensor_parallel_size=1) -> int
    available_kv_memory(total_gpu_bytes, gpu_memory_utilization, non_kv_bytes) -> int
    num_gpu_blocks(available_kv_bytes, kv_bytes_per_token, block_size) -> int
    kv_cache_tokens(num_gpu_blocks, block_size) -> int
    max_concurrency(num_gpu_blocks, block_size, max_model_len) -> float

``config`` is a Hugging Face ``config.json`` as a dict (full-attention decoder models:
``num_hidden_layers``, ``num_attention_heads``, optional ``num_key_value_heads`` and
``head_dim``). The arithmetic is vLLM V1's for one KV-cache group
(``vllm/v1/core/kv_cache_utils.py``: a page is ``block_size x kv_heads x 2 x head_dim x
dtype`` per layer; ``max_concurrency = num_blocks / cdiv(max_model_len, block_size)``;
``vllm/v1/worker/gpu_worker.py``: the budget is ``total x gpu_memory_utilization``).
KV heads are split across tensor-parallel ranks and replicated once there are more ranks
than heads. The package's tests check these answers against ``capacity_planner.plan``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from block_allocator.grading import Check, CheckFailed

__all__ = ["CHECKS", "CONTRACT", "reference"]

CONTRACT = """\
  kv_bytes_per_token(config, kv_dtype_bytes, tensor_parallel_size=1) -> int
  available_kv_memory(total_gpu_bytes, gpu_memory_utilization, non_kv_bytes) -> int
  num_gpu_blocks(available_kv_bytes, kv_bytes_per_token, block_size) -> int
  kv_cache_tokens(num_gpu_blocks, block_size) -> int
  max_concurrency(num_gpu_blocks, block_size, max_model_len) -> float
config: a Hugging Face config.json dict; bytes per token are per GPU (one rank);
non_kv_bytes: weights + activation peak + non-torch memory (what vLLM subtracts)."""

MiB = 1 << 20
GiB = 1 << 30

# Public config.json fields of the models the checks use (only the fields read here).
LLAMA_3_8B = {
    "model_type": "llama",
    "hidden_size": 4096,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "num_hidden_layers": 32,
}
QWEN3_4B = {  # head_dim 128 although hidden_size / heads = 80
    "model_type": "qwen3",
    "hidden_size": 2560,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "num_hidden_layers": 36,
}
OPT_13B = {  # multi-head attention: no num_key_value_heads field
    "model_type": "opt",
    "hidden_size": 5120,
    "num_attention_heads": 40,
    "num_hidden_layers": 40,
}
LLAMA_3_70B = {
    **LLAMA_3_8B,
    "hidden_size": 8192,
    "num_attention_heads": 64,
    "num_hidden_layers": 80,
}


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


class reference:
    """The lab's solution."""

    @staticmethod
    def kv_bytes_per_token(
        config: Mapping[str, Any], kv_dtype_bytes: int, tensor_parallel_size: int = 1
    ) -> int:
        heads = int(config["num_attention_heads"])
        kv_heads = int(config.get("num_key_value_heads") or heads)
        head_dim = int(config.get("head_dim") or config["hidden_size"] // heads)
        per_rank = max(1, kv_heads // tensor_parallel_size)
        return 2 * int(config["num_hidden_layers"]) * per_rank * head_dim * kv_dtype_bytes

    @staticmethod
    def available_kv_memory(
        total_gpu_bytes: int, gpu_memory_utilization: float, non_kv_bytes: int
    ) -> int:
        return int(total_gpu_bytes * gpu_memory_utilization - non_kv_bytes)

    @staticmethod
    def num_gpu_blocks(available_kv_bytes: int, kv_bytes_per_token: int, block_size: int) -> int:
        return max(0, available_kv_bytes // (kv_bytes_per_token * block_size))

    @staticmethod
    def kv_cache_tokens(num_gpu_blocks: int, block_size: int) -> int:
        return num_gpu_blocks * block_size

    @staticmethod
    def max_concurrency(num_gpu_blocks: int, block_size: int, max_model_len: int) -> float:
        return num_gpu_blocks / _cdiv(max_model_len, block_size)


def _expect(m: ModuleType, fn: str, args: tuple[Any, ...], why: str, slack: float = 0) -> None:
    want = getattr(reference, fn)(*args)
    got = getattr(m, fn)(*[dict(a) if isinstance(a, dict) else a for a in args])
    shown = ", ".join(_name(a) for a in args)
    if isinstance(got, bool) or not isinstance(got, (int, float)):
        raise CheckFailed(f"{fn}({shown}) returned {got!r}, not a number")
    if isinstance(want, int) and slack == 0:
        if not isinstance(got, int) and not float(got).is_integer():
            raise CheckFailed(f"{fn}({shown}) returned {got!r}; a count is a whole number")
        if int(got) != want:
            raise CheckFailed(f"{fn}({shown}) returned {got!r}, expected {want:,} ({why})")
    elif abs(float(got) - want) > max(slack, 1e-9 * abs(want)):
        raise CheckFailed(f"{fn}({shown}) returned {got!r}, expected {want!r} ({why})")


def _name(a: object) -> str:
    names = {id(LLAMA_3_8B): "llama-3-8b config", id(QWEN3_4B): "qwen3-4b config"}
    names |= {id(OPT_13B): "opt-13b config", id(LLAMA_3_70B): "llama-3-70b config"}
    return names.get(id(a), repr(a))


def _llama_bytes(m: ModuleType) -> None:
    _expect(m, "kv_bytes_per_token", (LLAMA_3_8B, 2), "2 x 32 layers x 8 KV heads x 128 x 2 B")


def _head_dim_field(m: ModuleType) -> None:
    _expect(m, "kv_bytes_per_token", (QWEN3_4B, 2), "head_dim 128 from the config, not 2560/32")


def _mha(m: ModuleType) -> None:
    _expect(m, "kv_bytes_per_token", (OPT_13B, 2), "MHA: KV heads = attention heads; 800 KiB")


def _fp8(m: ModuleType) -> None:
    _expect(m, "kv_bytes_per_token", (LLAMA_3_8B, 1), "an fp8 cache halves the bytes")


def _tensor_parallel(m: ModuleType) -> None:
    _expect(m, "kv_bytes_per_token", (LLAMA_3_8B, 2, 2), "TP 2: 4 KV heads per GPU")
    _expect(m, "kv_bytes_per_token", (LLAMA_3_70B, 2, 16), "TP 16 > 8 KV heads: one per GPU")


def _subtract(m: ModuleType) -> None:
    total = int(39.38 * GiB)  # an A100-40GB as torch reports it
    _expect(m, "available_kv_memory", (total, 0.83, 16_411_000_000), "total x 0.83 - non-KV", 1)
    _expect(m, "available_kv_memory", (80 * GiB, 0.9, 20 * GiB), "80 GiB x 0.9 - 20 GiB", 1)


def _carve(m: ModuleType) -> None:
    _expect(m, "num_gpu_blocks", (17_576 * MiB, 131_072, 16), "17,576 MiB / 2 MiB per block")
    _expect(m, "num_gpu_blocks", (17_576 * MiB - 1, 131_072, 16), "a partial block is not a block")
    _expect(m, "kv_cache_tokens", (8788, 16), "8,788 blocks x 16 tokens")


def _course_run(m: ModuleType) -> None:
    per_token = m.kv_bytes_per_token(dict(LLAMA_3_8B), 2)
    blocks = m.num_gpu_blocks(17_576 * MiB, per_token, 16)
    conc = m.max_concurrency(blocks, 16, 2048)
    if blocks != 8788 or not isinstance(conc, (int, float)) or f"{conc:.2f}" != "68.66":
        raise CheckFailed(
            f"Llama-3-8B with 17,576 MiB of KV memory: got {blocks!r} blocks and "
            f"{conc!r}x; vLLM prints '# GPU blocks: 8788' and 68.66x (the course text's "
            "68.65x is what 8,787 blocks print)"
        )


def _partial_last_block(m: ModuleType) -> None:
    _expect(m, "max_concurrency", (8788, 16, 2049), "2,049 tokens need cdiv = 129 blocks")
    _expect(m, "max_concurrency", (1000, 16, 1000), "1,000 tokens need 63 blocks, not 62.5")


def _below_one(m: ModuleType) -> None:
    _expect(m, "max_concurrency", (100, 16, 4096), "less than one full-length request: 0.39x")


def _random_settings(m: ModuleType) -> None:
    rng = random.Random(3)
    for _ in range(40):
        heads = rng.choice([8, 16, 32, 40, 64])
        cfg: dict[str, Any] = {
            "hidden_size": heads * rng.choice([64, 80, 128]),
            "num_attention_heads": heads,
            "num_hidden_layers": rng.randint(2, 96),
        }
        if rng.random() < 0.7:
            cfg["num_key_value_heads"] = rng.choice([h for h in (1, 2, 4, 8) if heads % h == 0])
        if rng.random() < 0.3:
            cfg["head_dim"] = rng.choice([64, 128, 256])
        tp = rng.choice([1, 1, 2, 4, 8])
        dtype = rng.choice([1, 2, 4])
        bs = rng.choice([1, 8, 16, 32, 64])
        _expect(m, "kv_bytes_per_token", (cfg, dtype, tp), f"config {cfg}, TP {tp}")
        per_token = reference.kv_bytes_per_token(cfg, dtype, tp)
        avail = rng.randint(per_token * bs, 80 * GiB)
        _expect(m, "num_gpu_blocks", (avail, per_token, bs), "random carve")
        blocks = reference.num_gpu_blocks(avail, per_token, bs)
        _expect(m, "kv_cache_tokens", (blocks, bs), "random carve")
        _expect(m, "max_concurrency", (blocks, bs, rng.randint(1, 200_000)), "random length")


def _check(
    name: str, summary: str, needs: tuple[str, ...], fn: Callable[[ModuleType], None]
) -> Check:
    return Check(name=name, lab="lab03", summary=summary, needs=needs, run=fn)


BYTES = ("kv_bytes_per_token",)
CARVE = ("num_gpu_blocks", "kv_cache_tokens")
ALL = ("kv_bytes_per_token", "available_kv_memory", *CARVE, "max_concurrency")

CHECKS: dict[str, tuple[Check, ...]] = {
    "lab03": (
        _check(
            "bytes_per_token", "Llama-3-8B holds 128 KiB of K and V per token", BYTES, _llama_bytes
        ),
        _check(
            "head_dim_field",
            "an explicit head_dim wins over hidden_size / heads",
            BYTES,
            _head_dim_field,
        ),
        _check("mha_config", "without num_key_value_heads every head has K and V", BYTES, _mha),
        _check("fp8_cache", "kv_dtype_bytes scales the cache", BYTES, _fp8),
        _check(
            "tensor_parallel",
            "KV heads split across ranks, replicated past their count",
            BYTES,
            _tensor_parallel,
        ),
        _check(
            "subtract",
            "available = total x utilization - non-KV memory",
            ("available_kv_memory",),
            _subtract,
        ),
        _check("carve", "blocks = available // (bytes per token x block_size)", CARVE, _carve),
        _check(
            "course_run",
            "the lab's run: 8,788 blocks print 68.66x",
            ("kv_bytes_per_token", "num_gpu_blocks", "max_concurrency"),
            _course_run,
        ),
        _check(
            "partial_last_block",
            "a request of L tokens holds cdiv(L, block_size) blocks",
            ("max_concurrency",),
            _partial_last_block,
        ),
        _check(
            "below_one",
            "concurrency is a ratio, not an integer division",
            ("max_concurrency",),
            _below_one,
        ),
        _check(
            "random_settings",
            "40 seeded models and settings agree",
            ALL[:1] + CARVE + ALL[-1:],
            _random_settings,
        ),
    )
}
