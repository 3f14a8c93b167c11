"""Request streams: a workload read and replayed in chunks, so memory follows the live set.

The engine pulls one :class:`Chunk` at a time from a :class:`RequestStream` and admits its
requests as the simulated clock reaches their arrival; a request's state exists from its
arrival to its completion only. Peak memory therefore depends on how many requests are
alive at once (queue + batch), not on the trace length: a week of Azure traffic replays
in the memory of its busiest minute.

Sources: an in-memory :class:`~frag_sim.workload.Workload` (``RequestStream.of``), a trace
file parsed lazily (:func:`stream_trace`), or a trace tiled in time to any length
(:func:`tile`), the stand-in for the Azure 2024 week (DynamoLLM, HPCA 2025), whose files
are not in git.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import ConfigError, EmptyTraceError, TraceFormatError
from .requests import FloatArray, IntArray, Workload

__all__ = ["Chunk", "RequestStream", "stream_trace", "tile"]

DEFAULT_CHUNK = 8_192


@dataclass(frozen=True, eq=False)
class Chunk:
    """Consecutive requests of a stream (arrivals sorted, continuing the previous chunk)."""

    arrival_s: FloatArray  # [n]
    prompt_len: IntArray  # [n]
    output_len: IntArray  # [n]
    hash_ids: list[tuple[int, ...]] | None = None  # [n] prefix-block ids (Mooncake)

    def __len__(self) -> int:
        return len(self.arrival_s)


@dataclass(frozen=True, eq=False)
class RequestStream:
    """A re-iterable source of chunks plus the workload metadata the engine needs.

    ``chunks`` is called once per replay and must yield chunks whose arrivals continue
    in sorted order. ``num_requests`` is the length when known in advance (for progress).
    """

    name: str
    chunks: Callable[[], Iterator[Chunk]]
    num_requests: int | None = None
    hash_block_size: int = 512
    shared_prefix_len: int = 0
    has_hash_ids: bool = False

    @classmethod
    def of(cls, wl: Workload, chunk_size: int = DEFAULT_CHUNK) -> RequestStream:
        """Stream an in-memory workload ``chunk_size`` requests at a time."""
        _check_chunk(chunk_size)

        def gen() -> Iterator[Chunk]:
            for a in range(0, len(wl), chunk_size):
                b = a + chunk_size
                hs = None if wl.hash_ids is None else list(wl.hash_ids[a:b])
                yield Chunk(wl.arrival_s[a:b], wl.prompt_len[a:b], wl.output_len[a:b], hs)

        return cls(
            wl.name,
            gen,
            len(wl),
            wl.hash_block_size,
            wl.shared_prefix_len,
            wl.hash_ids is not None,
        )


def _check_chunk(chunk_size: int) -> None:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ConfigError(f"chunk_size must be an integer >= 1, got {chunk_size!r}")


def tile(wl: Workload, num_requests: int, chunk_size: int = DEFAULT_CHUNK) -> RequestStream:
    """``wl`` repeated back to back in time until ``num_requests`` requests.

    Copy ``k`` is shifted by ``k * (span + mean gap)``, so the tiled stream keeps the
    trace's rate and burst pattern. Only one chunk exists at a time.
    """
    if isinstance(num_requests, bool) or not isinstance(num_requests, int) or num_requests < 1:
        raise ConfigError(f"num_requests must be an integer >= 1, got {num_requests!r}")
    _check_chunk(chunk_size)
    m = len(wl)
    span = float(wl.arrival_s[-1] - wl.arrival_s[0])
    period = span + (span / (m - 1) if m > 1 else 1.0)
    base = wl.arrival_s - wl.arrival_s[0]

    def gen() -> Iterator[Chunk]:
        done = 0
        while done < num_requests:
            idx = np.arange(done, min(done + chunk_size, num_requests))
            copy, row = np.divmod(idx, m)
            hs = None if wl.hash_ids is None else [wl.hash_ids[r] for r in row.tolist()]
            yield Chunk(base[row] + copy * period, wl.prompt_len[row], wl.output_len[row], hs)
            done += len(idx)

    return RequestStream(
        f"{wl.name} tiled to {num_requests:,}",
        gen,
        num_requests,
        wl.hash_block_size,
        wl.shared_prefix_len,
        wl.hash_ids is not None,
    )


def stream_trace(path: str | os.PathLike[str], chunk_size: int = DEFAULT_CHUNK) -> RequestStream:
    """Read an Azure 2023 CSV or a Mooncake JSONL trace lazily, ``chunk_size`` rows at a
    time. Rows must be sorted by arrival (both public traces are); arrivals are shifted to
    start at 0 as :func:`~frag_sim.workload.traces.load_trace` does."""
    from .traces import azure_columns, parse_azure_row, parse_mooncake_line

    _check_chunk(chunk_size)
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"trace file {p} not found")
    jsonl = p.suffix == ".jsonl"

    def rows() -> Iterator[tuple[int, float, int, int, tuple[int, ...] | None]]:
        with open(p, newline="", encoding="utf-8") as fh:
            if jsonl:
                for line, text in enumerate(fh, start=1):
                    if text.strip():
                        yield (line, *parse_mooncake_line(str(p), line, text))
                return
            reader = csv.reader(fh)
            cols = azure_columns(str(p), next(reader, None))
            days: dict[str, int] = {}
            for row in reader:
                if row and any(c.strip() for c in row):
                    t, pl, ol = parse_azure_row(str(p), reader.line_num, cols, row, days)
                    yield reader.line_num, t, pl, ol, None

    def gen() -> Iterator[Chunk]:
        first: float | None = None
        last = -np.inf
        buf: tuple[list[float], list[int], list[int], list[tuple[int, ...]]] = ([], [], [], [])
        for line, t, pl, ol, h in rows():
            if t < last:
                raise TraceFormatError(
                    str(p), line, "arrivals go back in time; streaming needs sorted rows"
                )
            last = t
            if first is None:
                first = t
            buf[0].append(t - first)
            buf[1].append(pl)
            buf[2].append(ol)
            if h is not None:
                buf[3].append(h)
            if len(buf[0]) == chunk_size:
                yield _chunk(buf, jsonl)
                buf = ([], [], [], [])
        if first is None:
            raise EmptyTraceError(f"{p}: no request rows")
        if buf[0]:
            yield _chunk(buf, jsonl)

    return RequestStream(p.stem, gen, None, 512, 0, jsonl)


def _chunk(
    buf: tuple[list[float], list[int], list[int], list[tuple[int, ...]]], jsonl: bool
) -> Chunk:
    return Chunk(
        np.asarray(buf[0], dtype=np.float64),
        np.asarray(buf[1], dtype=np.int64),
        np.asarray(buf[2], dtype=np.int64),
        buf[3] if jsonl else None,
    )
