"""Prefix-sharing statistics straight from a trace's ``hash_ids`` (no simulation).

Mooncake FAST'25 traces list each prompt as 512-token prefix-block ids; a block id seen
earlier in the file is KV that an infinite prefix cache would already hold. This is the
upper bound that the simulated hit rate (finite cache, eviction, block-size effects)
approaches as the cache grows.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError
from .requests import Workload

__all__ = ["PrefixStats", "prefix_stats"]


@dataclass(frozen=True)
class PrefixStats:
    num_blocks: int
    unique_blocks: int
    repeated_share: float  # blocks seen earlier / all blocks
    repeated_token_share: float  # tokens in repeated *leading* blocks / prompt tokens

    @property
    def as_dict(self) -> dict[str, float]:
        return {
            "num_blocks": self.num_blocks,
            "unique_blocks": self.unique_blocks,
            "repeated_share": self.repeated_share,
            "repeated_token_share": self.repeated_token_share,
        }


def prefix_stats(workload: Workload) -> PrefixStats:
    """Share of prefix blocks that repeat an earlier one, in trace order (infinite cache).

    ``repeated_token_share`` counts only a request's leading run of seen blocks, as a
    chained-hash prefix cache would (a miss ends the hit), capped at ``prompt - 1`` tokens.
    """
    if workload.hash_ids is None:
        raise ConfigError(f"workload {workload.name!r} has no hash_ids (not a Mooncake trace)")
    hb = workload.hash_block_size
    seen: set[int] = set()
    total = repeated = 0
    hit_tokens = prompt_tokens = 0
    for ids, p in zip(workload.hash_ids, workload.prompt_len.tolist(), strict=False):
        leading = True
        run = 0
        for h in ids:
            total += 1
            if h in seen:
                repeated += 1
                if leading:
                    run += 1
            else:
                leading = False
                seen.add(h)
        hit_tokens += min(run * hb, p - 1)
        prompt_tokens += p
    return PrefixStats(
        total,
        len(seen),
        repeated / total if total else 0.0,
        hit_tokens / prompt_tokens if prompt_tokens else 0.0,
    )
