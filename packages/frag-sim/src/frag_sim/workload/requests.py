"""Request streams: the `Workload` every policy replays, and seeded synthetic generators.

Arrivals follow vLLM's ``benchmarks/benchmark_serving.py``: inter-arrival gaps drawn from
``gamma(shape=burstiness, scale=1/(rate*burstiness))`` (burstiness 1 = Poisson, < 1 =
burstier, > 1 = smoother). Lengths come from a :class:`LengthDist`. Named length mixes:
the "PagedAttention from scratch in 300 lines" capstone's prompts U[200, 4000] / outputs
U[50, 500] (``capstone``), and "paper-mean-matched" ShareGPT and
Alpaca stand-ins (PagedAttention §6.1, Fig. 11 means; the paper gives no variances, so the
spreads are our choice and are labelled as such).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from ..errors import ConfigError, EmptyTraceError

__all__ = ["LENGTH_MIXES", "LengthDist", "SyntheticWorkload", "Workload"]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class Workload:
    """A request stream: arrival times (s, sorted), prompt and output lengths (tokens).

    ``hash_ids`` optionally gives each request's prompt as a list of prefix-block ids of
    ``hash_block_size`` tokens (Mooncake's format); equal leading ids = shared prefix KV.
    ``shared_prefix_len`` models one system prompt common to every request instead.
    """

    name: str
    arrival_s: FloatArray  # [num_requests]
    prompt_len: IntArray  # [num_requests]
    output_len: IntArray  # [num_requests]
    hash_ids: tuple[tuple[int, ...], ...] | None = None
    hash_block_size: int = 512
    shared_prefix_len: int = 0
    source: str = "synthetic"

    def __post_init__(self) -> None:
        n = len(self.arrival_s)
        if n == 0:
            raise EmptyTraceError(f"workload {self.name!r} holds no request")
        if len(self.prompt_len) != n or len(self.output_len) != n:
            raise ConfigError("arrival_s, prompt_len and output_len must have equal lengths")
        if self.hash_ids is not None and len(self.hash_ids) != n:
            raise ConfigError("hash_ids must hold one entry per request")
        if np.any(np.diff(self.arrival_s) < 0):
            raise ConfigError("arrival_s must be sorted ascending")
        if not np.all(np.isfinite(self.arrival_s)) or np.any(self.arrival_s < 0):
            raise ConfigError("arrival_s must be finite and >= 0")
        if int(self.prompt_len.min()) < 1 or int(self.output_len.min()) < 1:
            raise ConfigError("prompt_len and output_len must be >= 1 token for every request")
        if self.hash_block_size < 1:
            raise ConfigError(f"hash_block_size must be >= 1, got {self.hash_block_size}")
        if self.shared_prefix_len < 0:
            raise ConfigError(f"shared_prefix_len must be >= 0, got {self.shared_prefix_len}")

    def __len__(self) -> int:
        return len(self.arrival_s)

    @property
    def has_prefix_info(self) -> bool:
        return self.hash_ids is not None or self.shared_prefix_len > 0

    def head(self, n: int) -> Workload:
        """The first ``n`` requests (for quick runs and tests)."""
        if n < 1:
            raise ConfigError(f"head(n) needs n >= 1, got {n}")
        hs = None if self.hash_ids is None else self.hash_ids[:n]
        return Workload(
            f"{self.name}[:{n}]",
            self.arrival_s[:n],
            self.prompt_len[:n],
            self.output_len[:n],
            hs,
            self.hash_block_size,
            self.shared_prefix_len,
            self.source,
        )

    def stats(self) -> dict[str, float]:
        """Mean lengths, rate and span, for reports."""
        span = float(self.arrival_s[-1] - self.arrival_s[0])
        return {
            "num_requests": float(len(self)),
            "mean_prompt": float(self.prompt_len.mean()),
            "mean_output": float(self.output_len.mean()),
            "span_s": span,
            "rate_per_s": (len(self) - 1) / span if span > 0 else math.inf,
        }


@dataclass(frozen=True)
class LengthDist:
    """A token-length distribution; samples are integers clipped to [min_len, max_len].

    kinds: ``uniform`` (integers in [low, high]), ``fixed`` (``mean``), ``lognormal`` and
    ``exponential`` (``mean``; lognormal also ``cv`` = std / mean).
    """

    kind: Literal["uniform", "fixed", "lognormal", "exponential"] = "uniform"
    low: int = 1
    high: int = 1
    mean: float = 1.0
    cv: float = 1.0
    min_len: int = 1
    max_len: int = 1 << 30

    def __post_init__(self) -> None:
        if self.kind not in ("uniform", "fixed", "lognormal", "exponential"):
            raise ConfigError(
                f"length kind must be uniform, fixed, lognormal or exponential, got {self.kind!r}"
            )
        if self.min_len < 1 or self.max_len < self.min_len:
            raise ConfigError(
                f"need 1 <= min_len <= max_len, got min_len={self.min_len}, max_len={self.max_len}"
            )
        if self.kind == "uniform" and not (1 <= self.low <= self.high):
            raise ConfigError(
                f"uniform lengths need 1 <= low <= high, got [{self.low}, {self.high}]"
            )
        if self.kind != "uniform" and not self.mean >= 1:
            raise ConfigError(f"mean length must be >= 1 token, got {self.mean}")
        if self.kind == "lognormal" and not self.cv > 0:
            raise ConfigError(f"lognormal cv must be > 0, got {self.cv}")

    @classmethod
    def uniform(cls, low: int, high: int) -> LengthDist:
        return cls("uniform", low=low, high=high)

    def sample(self, rng: np.random.Generator, n: int) -> IntArray:
        if self.kind == "uniform":
            x = rng.integers(self.low, self.high + 1, size=n)
        elif self.kind == "fixed":
            x = np.full(n, round(self.mean))
        elif self.kind == "exponential":
            x = np.rint(rng.exponential(self.mean, size=n))
        else:
            sigma2 = math.log1p(self.cv * self.cv)
            mu = math.log(self.mean) - sigma2 / 2
            x = np.rint(rng.lognormal(mu, math.sqrt(sigma2), size=n))
        return np.clip(x, self.min_len, self.max_len).astype(np.int64)


LENGTH_MIXES: dict[str, tuple[LengthDist, LengthDist]] = {
    # the 'PagedAttention from scratch in 300 lines' capstone, step 05: prompts
    # U[200, 4000], outputs U[50, 500]
    "capstone": (LengthDist.uniform(200, 4000), LengthDist.uniform(50, 500)),
    # synthetic, paper-mean-matched (PagedAttention Fig. 11 means 161.31 / 337.99); the
    # spreads (cv) are ours: the paper shows only densities. Prompts capped at 1024 as in
    # vLLM's ShareGPT filter; the ~0.1% with prompt + output > 2048 are rejected by the run.
    "sharegpt": (
        LengthDist("lognormal", mean=161.31, cv=1.2, min_len=4, max_len=1024),
        LengthDist("lognormal", mean=337.99, cv=1.0, min_len=4, max_len=1536),
    ),
    # synthetic, paper-mean-matched: Alpaca means 19.31 / 58.45
    "alpaca": (
        LengthDist("lognormal", mean=19.31, cv=0.6, min_len=4, max_len=512),
        LengthDist("lognormal", mean=58.45, cv=0.9, min_len=4, max_len=1024),
    ),
}


@dataclass(frozen=True)
class SyntheticWorkload:
    """Seeded synthetic request stream. ``rate`` is requests per second (``inf`` = all at 0)."""

    num_requests: int = 1000
    rate: float = 1.0
    burstiness: float = 1.0
    prompt: LengthDist = field(default_factory=lambda: LENGTH_MIXES["capstone"][0])
    output: LengthDist = field(default_factory=lambda: LENGTH_MIXES["capstone"][1])
    seed: int = 0
    shared_prefix_len: int = 0
    name: str = "synthetic"

    def __post_init__(self) -> None:
        if self.num_requests < 1:
            raise ConfigError(f"num_requests must be >= 1, got {self.num_requests}")
        if not self.rate > 0:  # also rejects NaN
            raise ConfigError(f"rate must be > 0 requests/s (inf allowed), got {self.rate}")
        if not (self.burstiness > 0 and math.isfinite(self.burstiness)):
            raise ConfigError(f"burstiness must be a finite number > 0, got {self.burstiness}")
        if self.shared_prefix_len < 0:
            raise ConfigError(f"shared_prefix_len must be >= 0, got {self.shared_prefix_len}")

    @classmethod
    def from_mix(cls, mix: str, **kwargs: object) -> SyntheticWorkload:
        """Build from a named length mix in :data:`LENGTH_MIXES`."""
        if mix not in LENGTH_MIXES:
            raise ConfigError(f"unknown length mix {mix!r}; known: {sorted(LENGTH_MIXES)}")
        p, o = LENGTH_MIXES[mix]
        return cls(prompt=p, output=o, name=str(kwargs.pop("name", mix)), **kwargs)  # type: ignore[arg-type]

    def generate(self) -> Workload:
        rng = np.random.default_rng(self.seed)
        n = self.num_requests
        if math.isinf(self.rate):
            arrivals = np.zeros(n)
        else:
            gaps = rng.gamma(self.burstiness, 1.0 / (self.rate * self.burstiness), size=n)
            gaps[0] = 0.0
            arrivals = np.cumsum(gaps)
        prompt = self.prompt.sample(rng, n)
        if self.shared_prefix_len:
            prompt = prompt + self.shared_prefix_len
        output = self.output.sample(rng, n)
        return Workload(
            self.name,
            arrivals.astype(np.float64),
            prompt,
            output,
            shared_prefix_len=self.shared_prefix_len,
            source="synthetic",
        )
