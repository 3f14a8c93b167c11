"""Split a pasted vLLM log into engine start-ups ("runs") and collect each run's facts.

One file often holds several start-ups: a user retrying with another `--max-model-len`
(vLLM issue #10517 pastes three), a before/after pair from a PR (vLLM PR #13596), or a restart after
an upgrade. A run starts at an engine banner ("Initializing ... LLM engine", "vLLM API
server version", "non-default args") once the current run has reported numbers, or
when a number it already holds comes again from the same process with another value.
The same value again from the same process is a duplicate (tensor-parallel workers
without a prefix print identical lines), kept once.

Nothing here raises on any input: unknown lines are counted, cut-short lines noted.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from capacity_planner.explain.clean import clean_line
from capacity_planner.explain.patterns import (
    SETTING_KEYS,
    SGLANG_SETTING_KEYS,
    Fact,
    Value,
    extract_facts,
)

__all__ = ["LogRun", "ParsedLog", "parse_log"]

_BANNER_KEYS = frozenset({"engine", "vllm_version", "sglang_banner"})
_NOT_NUMBERS = frozenset(SETTING_KEYS) | _BANNER_KEYS | frozenset(SGLANG_SETTING_KEYS)
# SGLang's per-pool line: a hybrid sliding-window rank prints it twice (SWA pool, then
# full pool) with different numbers, which is one start-up, not two. A quoted excerpt
# may lack the split line before them, so any process may print two; SGLang's
# `server_args=ServerArgs(...)` banner still opens a new start-up.
_POOL_KEYS = frozenset({"sglang_tokens", "sglang_k_gib", "sglang_v_gib", "sglang_kv_gib"})
# Lines that open the memory story, and lines that close it.
_STORY_START = frozenset(
    {"weights_loaded_gib", "weights_gib", "total_gpu_gib", "requested_gib", "peak_torch_gib"}
)
_REPORTED = frozenset(
    {"num_gpu_blocks", "kv_cache_tokens", "max_concurrency", "error_kv_tokens", "error_needed_gib"}
)


@dataclass(frozen=True)
class LogRun:
    """The facts of one engine start-up, in log order."""

    index: int
    facts: tuple[Fact, ...]
    first_line: int
    last_line: int

    def all(self, key: str) -> tuple[Fact, ...]:
        """Every fact with this key (one per process that printed it)."""
        return tuple(f for f in self.facts if f.key == key)

    def get(self, key: str) -> Fact | None:
        """The fact with this key from the main process (or the first one printed)."""
        found = self.all(key)
        if not found:
            return None
        for fact in found:
            if fact.source is None or fact.rank == 0:
                return fact
        return found[0]

    def value(self, key: str) -> Value | None:
        fact = self.get(key)
        return None if fact is None else fact.value

    @property
    def sources(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for fact in self.facts:
            if fact.source is not None:
                seen.setdefault(fact.source, None)
        return tuple(seen)

    @property
    def has_numbers(self) -> bool:
        return any(f.key not in _NOT_NUMBERS for f in self.facts)


@dataclass(frozen=True)
class ParsedLog:
    """All runs of a log plus what could not be read."""

    runs: tuple[LogRun, ...]
    num_lines: int
    truncated_lines: tuple[int, ...]
    duplicate_lines: int


@dataclass
class _Builder:
    facts: list[Fact] = field(default_factory=list)
    seen: dict[tuple[str, str | None], Value] = field(default_factory=dict)
    first_line: int = 0
    last_line: int = 0
    reported: bool = False
    pool_lines: dict[str | None, int] = field(default_factory=dict)  # per process

    def second_pool(self, fact: Fact) -> bool:
        """The full pool's line after the SWA pool's, from the same process."""
        return fact.key in _POOL_KEYS and self.pool_lines.get(fact.source, 0) == 1

    def has_numbers(self) -> bool:
        return any(f.key not in _NOT_NUMBERS for f in self.facts)

    def freeze(self, index: int) -> LogRun:
        return LogRun(index, tuple(self.facts), self.first_line, self.last_line)


def parse_log(text: str) -> ParsedLog:
    """Parse the text of a vLLM log. Never raises on any string."""
    runs: list[LogRun] = []
    current = _Builder()
    truncated: list[int] = []
    duplicates = 0
    lines = text.splitlines()

    def close() -> None:
        nonlocal current
        if current.facts:
            runs.append(current.freeze(len(runs)))
        current = _Builder()

    for line_no, raw in enumerate(lines, start=1):
        line = clean_line(line_no, raw)
        facts, cut = extract_facts(line)
        if cut:
            truncated.append(line_no)
        if not facts:
            continue
        banner = any(f.key in _BANNER_KEYS or f.key == "model" for f in facts)
        # A value this process already printed, now different: a new start-up.
        conflict = any(
            current.seen.get((f.key, f.source), f.value) != f.value
            for f in facts
            if not current.second_pool(f)
        )
        if (banner or conflict) and current.has_numbers():
            close()
        # The story restarting after vLLM already reported blocks: a new start-up even
        # when the numbers repeat (the same model loaded again with other settings).
        restart = any(
            (f.key, f.source) in current.seen
            and (f.key == "profiling_header" or (current.reported and f.key in _STORY_START))
            for f in facts
        )
        if restart and current.has_numbers():
            close()
        kept = []
        for fact in facts:
            slot = (fact.key, fact.source)
            if (
                current.seen.get(slot) == fact.value
                and fact.key not in _NOT_NUMBERS
                and fact.key != "profiling_header"
                and not current.second_pool(fact)
            ):
                duplicates += 1
                continue
            current.seen.setdefault(slot, fact.value)
            current.reported = current.reported or fact.key in _REPORTED
            kept.append(fact)
        if kept:
            source = kept[0].source
            if any(f.key == "sglang_tokens" for f in kept):
                current.pool_lines[source] = current.pool_lines.get(source, 0) + 1
            if not current.facts:
                current.first_line = line_no
            current.facts.extend(kept)
            current.last_line = line_no
    close()
    return ParsedLog(tuple(runs), len(lines), tuple(truncated), duplicates)
