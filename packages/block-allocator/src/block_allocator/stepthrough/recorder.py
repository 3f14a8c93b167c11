"""Record a sequence of ``KVCacheManager`` calls as steps the page can replay.

``Recorder(manager).manager`` is a stand-in for the manager: every public call made through
it goes to the real manager and is then recorded with a one-line description and a
:class:`~block_allocator.stepthrough.snapshot.Snapshot` of the state it left. The real
manager is not touched (no patched methods, no hooks): recording costs nothing on the
allocator's path when it is off, and a call made directly on the manager is simply not a
step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..block import KVCacheBlock
from ..kv_cache_manager import KVCacheManager
from ..request import Request
from .snapshot import Snapshot, take_snapshot

__all__ = ["READ_ONLY_CALLS", "RecordedStep", "Recorder"]

READ_ONLY_CALLS = frozenset(
    {
        "get_block_ids",
        "get_block_table",
        "get_num_cached_tokens",
        "slot_mapping",
        "prefix_cache_stats",
        "take_events",
    }
)
"""Manager calls that change nothing: made through the recorder, they are not steps."""


@dataclass(frozen=True)
class RecordedStep:
    """One step of the page: the call, what it returned, an explanation, the state after."""

    call: str  # e.g. "allocate_slots(a, 9)"
    result: str  # e.g. "3 new blocks [1, 2, 3]"
    snapshot: Snapshot
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "call": self.call,
            "result": self.result,
            "note": self.note,
            **self.snapshot.to_json(),
        }


def _describe(value: object) -> str:
    if isinstance(value, Request):
        return value.request_id
    if isinstance(value, KVCacheBlock):
        return f"#{value.block_id}"
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, KVCacheBlock) for v in value):
            return "[" + ", ".join(f"#{v.block_id}" for v in value) + "]"
        if len(value) > 6:
            return f"[{len(value)} items]"
        inner = ", ".join(_describe(v) for v in value)
        return f"({inner})" if isinstance(value, tuple) else f"[{inner}]"
    return repr(value)


def _describe_result(name: str, result: object) -> str:
    if name == "get_computed_blocks" and isinstance(result, tuple) and len(result) == 2:
        blocks, tokens = result
        return f"hit {tokens} tokens in {len(blocks)} blocks {_describe(blocks)}"
    if name == "allocate_slots":
        if result is None:
            return "refused: not enough free blocks (nothing changed)"
        if isinstance(result, list):
            if not result:
                return "no new block needed"
            plural = "block" if len(result) == 1 else "blocks"
            return f"{len(result)} new {plural} {_describe(result)}"
    if name == "take_blocks_to_copy" and isinstance(result, list):
        pairs = ", ".join(f"#{src} -> #{dst}" for src, dst in result)
        return f"copy {pairs}" if pairs else "nothing to copy"
    if name == "fork" and isinstance(result, Request):
        return f"child {result.request_id} shares every block"
    return "" if result is None else _describe(result)


class _RecordingManager:
    """Forwards every attribute to the manager; public calls become recorded steps."""

    def __init__(self, recorder: Recorder) -> None:
        self._recorder = recorder

    def __getattr__(self, name: str) -> Any:
        target = getattr(self._recorder.target, name)
        if name.startswith("_") or name in READ_ONLY_CALLS or not callable(target):
            return target
        recorder = self._recorder

        def call(*args: Any, **kwargs: Any) -> Any:
            recorder.watch(*args, *kwargs.values())
            result = target(*args, **kwargs)
            recorder.watch(result)
            parts = [_describe(a) for a in args] + [
                f"{k}={_describe(v)}" for k, v in kwargs.items()
            ]
            recorder.step(f"{name}({', '.join(parts)})", _describe_result(name, result))
            return result

        return call


class Recorder:
    """Records calls made through :attr:`manager` into steps for :func:`write_page`."""

    def __init__(self, manager: KVCacheManager, *, title: str = "KV-cache step-through") -> None:
        if not isinstance(manager, KVCacheManager):
            raise TypeError(f"manager must be a KVCacheManager, got {type(manager).__name__}")
        self.target = manager
        self.title = title
        self.steps: list[RecordedStep] = []
        self._requests: dict[str, Request] = {}
        self.manager: Any = _RecordingManager(self)
        self.step("start", f"{manager.block_pool.num_blocks} blocks of {manager.block_size} tokens")

    def watch(self, *values: object) -> None:
        """Show the hash chains (and tables) of these requests from now on."""
        for value in values:
            if isinstance(value, Request):
                self._requests.setdefault(value.request_id, value)

    def step(self, call: str, result: str = "", note: str = "") -> RecordedStep:
        """Record the current state as a step (the recording manager calls this)."""
        recorded = RecordedStep(
            call, result, take_snapshot(self.target, self._requests.values()), note
        )
        self.steps.append(recorded)
        return recorded

    def note(self, text: str) -> None:
        """Attach an explanation to the last recorded step."""
        last = self.steps[-1]
        joined = f"{last.note} {text}".strip()
        self.steps[-1] = RecordedStep(last.call, last.result, last.snapshot, joined)

    # Conveniences for the scheduler's usual sequence, recorded as the calls they make.
    def admit(self, request: Request) -> list[KVCacheBlock] | None:
        """Look up the prefix cache, allocate the rest, mark the prompt computed."""
        hits, num_hit_tokens = self.manager.get_computed_blocks(request)
        blocks: list[KVCacheBlock] | None = self.manager.allocate_slots(
            request, request.num_tokens - num_hit_tokens, hits
        )
        if blocks is not None:
            request.num_computed_tokens = request.num_tokens
        return blocks

    def decode(self, request: Request, token_ids: Sequence[int]) -> bool:
        """Decode ``token_ids``, one step each: append the sampled token, allocate its slot.

        Returns False at the first step the pool cannot serve; that token stays appended
        (as in a scheduler, which would preempt the request) and nothing else changed.
        """
        for token in token_ids:
            request.append_output_token_ids(token)
            if self.manager.allocate_slots(request, 1) is None:
                return False
            request.num_computed_tokens += 1
        return True

    def write_page(self, path: str | Path) -> Path:
        """Write the self-contained HTML page of every recorded step."""
        from .page import write_page

        return write_page(self, path)

    def to_json(self) -> dict[str, Any]:
        mgr = self.target
        return {
            "title": self.title,
            "num_blocks": mgr.block_pool.num_blocks,
            "block_size": mgr.block_size,
            "free_order": mgr.block_pool.free_order,
            "steps": [s.to_json() for s in self.steps],
        }
