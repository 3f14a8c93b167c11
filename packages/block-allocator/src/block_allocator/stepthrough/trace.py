"""Replay a user's own recorded trace of allocator calls (a JSON file) through a Recorder.

The format is small on purpose, one object per call, in the scheduler's vocabulary::

    {"num_blocks": 16, "block_size": 4, "free_order": "classic",
     "steps": [
       {"op": "admit", "request": "a", "prompt": [1, 2, 3, 4, 5]},
       {"op": "decode", "request": "a", "tokens": [6, 7]},
       {"op": "fork", "request": "a", "child": "a1"},
       {"op": "free", "request": "a"},
       {"op": "reset_prefix_cache"},
       {"op": "note", "text": "anything to show beside the last step"}]}

Every field is checked before any call is made, so a malformed trace is reported with the
step and the field at fault and nothing is recorded.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..kv_cache_manager import KVCacheManager
from ..request import Request
from .recorder import Recorder

__all__ = ["TRACE_OPS", "TraceError", "load_trace", "replay_trace"]

TRACE_OPS = ("admit", "decode", "fork", "free", "reset_prefix_cache", "note")


class TraceError(ValueError):
    """A trace file that cannot be replayed; the message names the step and the field."""


def _field(step: Mapping[str, Any], i: int, name: str, kind: type) -> Any:
    value = step.get(name)
    if kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is list:
        ok = (
            isinstance(value, list)
            and bool(value)
            and all(isinstance(t, int) and not isinstance(t, bool) and t >= 0 for t in value)
        )
    else:
        ok = isinstance(value, kind) and bool(value)
    if not ok:
        want = {
            int: "an int",
            str: "a non-empty string",
            list: "a non-empty list of token ids >= 0",
        }
        raise TraceError(f"steps[{i}].{name} must be {want[kind]}, got {value!r}")
    return value


def load_trace(path: str | Path) -> dict[str, Any]:
    """Read and check a trace file (see the module docstring for the format)."""
    try:
        trace = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise TraceError(f"cannot read the trace file {str(path)!r}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise TraceError(f"the trace file is not JSON: {exc}") from None
    if not isinstance(trace, dict) or not isinstance(trace.get("steps"), list):
        raise TraceError('a trace is a JSON object with a "steps" list')
    for name, low in (("num_blocks", 2), ("block_size", 1)):
        value = trace.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise TraceError(f"{name} must be an int >= {low}, got {value!r}")
    for i, step in enumerate(trace["steps"]):
        if not isinstance(step, dict) or step.get("op") not in TRACE_OPS:
            op = step.get("op") if isinstance(step, dict) else step
            raise TraceError(f"steps[{i}].op must be one of {', '.join(TRACE_OPS)}, got {op!r}")
        op = step["op"]
        if op == "note":
            _field(step, i, "text", str)
        elif op != "reset_prefix_cache":
            _field(step, i, "request", str)
        if op == "admit":
            _field(step, i, "prompt", list)
        elif op == "decode":
            _field(step, i, "tokens", list)
        elif op == "fork":
            _field(step, i, "child", str)
    return trace


def replay_trace(trace: Mapping[str, Any], title: str = "A recorded trace") -> Recorder:
    """Run a checked trace through a fresh manager, recording every call."""
    manager = KVCacheManager(
        trace["num_blocks"], trace["block_size"], free_order=trace.get("free_order", "classic")
    )
    rec = Recorder(manager, title=title)
    requests: dict[str, Request] = {}

    def known(i: int, rid: str) -> Request:
        if rid not in requests:
            raise TraceError(f"steps[{i}].request {rid!r} was never admitted")
        return requests[rid]

    for i, step in enumerate(trace["steps"]):
        op = step["op"]
        if op == "admit":
            if step["request"] in requests:
                raise TraceError(f"steps[{i}].request {step['request']!r} is already admitted")
            request = Request(step["request"], step["prompt"])
            requests[request.request_id] = request
            if rec.admit(request) is None:
                rec.note(f"{request.request_id} did not fit and was not admitted.")
                del requests[request.request_id]
        elif op == "decode":
            rec.decode(known(i, step["request"]), step["tokens"])
        elif op == "fork":
            child = rec.manager.fork(known(i, step["request"]), step["child"])
            requests[child.request_id] = child
        elif op == "free":
            rec.manager.free(requests.pop(step["request"], None) or known(i, step["request"]))
        elif op == "reset_prefix_cache":
            rec.manager.reset_prefix_cache()
        else:
            rec.note(step["text"])
    return rec
