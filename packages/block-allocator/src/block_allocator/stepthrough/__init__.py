"""Watch the allocator work: record ``KVCacheManager`` calls, replay them in a browser.

``Recorder(manager)`` records every call made through ``recorder.manager`` with a snapshot
of the pool (each block's state and ref_cnt, the free queue from head to tail, every
request's block table and hash chain); ``recorder.write_page("page.html")`` writes one
self-contained HTML page that steps forward and back through them. Named scenarios
(``biography``, ``beam``, ``serving``) and a user's own JSON trace are one command away::

    block-allocator stepthrough biography -o biography.html
    block-allocator stepthrough --trace my_calls.json -o mine.html

Nothing here is imported by the allocator itself: with no recorder, the allocator runs
exactly as before.
"""

from __future__ import annotations

from .page import render_page, write_page
from .recorder import READ_ONLY_CALLS, RecordedStep, Recorder
from .scenarios import SCENARIOS, record_scenario
from .snapshot import BLOCK_STATES, Snapshot, block_state, take_snapshot
from .trace import TRACE_OPS, TraceError, load_trace, replay_trace

__all__ = [
    "BLOCK_STATES",
    "READ_ONLY_CALLS",
    "SCENARIOS",
    "TRACE_OPS",
    "RecordedStep",
    "Recorder",
    "Snapshot",
    "TraceError",
    "block_state",
    "load_trace",
    "record_scenario",
    "render_page",
    "replay_trace",
    "take_snapshot",
    "write_page",
]
