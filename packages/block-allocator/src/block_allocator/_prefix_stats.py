"""Prefix-cache hit statistics: noted at lookup, counted at admission, drained on read.

Mirrors ``PrefixCacheStats.record`` in ``vllm/v1/metrics/stats.py`` and the manager's
``make_prefix_cache_stats`` / ``reset_prefix_cache`` in ``vllm/v1/core/kv_cache_manager.py``
(0.34.0). A lookup is held per request until that request's first successful allocation,
so a scheduler that retries a blocked queue head counts it once (vLLM issue #43736, PR
#48860); a request preempted before counts in the ``preempted_*`` fields.
"""

from __future__ import annotations

from .events import PrefixCacheStats

__all__ = ["PrefixCacheStatsRecorder"]


class PrefixCacheStatsRecorder:
    """The current stats window of one manager and the lookups not yet counted."""

    __slots__ = ("_lookups", "_reset", "_window")

    def __init__(self) -> None:
        self._lookups: dict[str, tuple[int, int]] = {}  # request id -> (tokens, hit tokens)
        # requests, queries, hits, then the same three for previously preempted requests
        self._window = [0, 0, 0, 0, 0, 0]
        self._reset = False

    def note_lookup(self, request_id: str, num_tokens: int, num_hits: int) -> None:
        """Hold the latest lookup of a request until it is admitted (or forgotten)."""
        self._lookups[request_id] = (num_tokens, num_hits)

    def forget(self, request_id: str) -> None:
        self._lookups.pop(request_id, None)

    def admit(self, request_id: str, preempted: bool) -> None:
        """Count the request's held lookup, if any, in the current window."""
        lookup = self._lookups.pop(request_id, None)
        if lookup is not None:
            w = self._window
            k = 3 if preempted else 0
            w[k] += 1
            w[k + 1] += lookup[0]
            w[k + 2] += lookup[1]

    def mark_reset(self) -> None:
        self._reset = True

    def peek(self) -> PrefixCacheStats:
        w = self._window
        return PrefixCacheStats(w[0], w[1], w[2], self._reset, w[3], w[4], w[5])

    def drain(self) -> PrefixCacheStats:
        """The window so far; a new, empty one starts (held lookups stay held)."""
        stats = self.peek()
        self._window = [0, 0, 0, 0, 0, 0]
        self._reset = False
        return stats
