"""Exceptions raised by frag-sim.

One base class, :class:`FragSimError`; each subclass also derives from the builtin a caller
would expect (``ValueError`` for bad configuration or input files), so generic handlers work.
"""

from __future__ import annotations

__all__ = ["ConfigError", "EmptyTraceError", "FragSimError", "TraceFormatError"]


class FragSimError(Exception):
    """Base class of every error raised by ``frag_sim``."""


class ConfigError(FragSimError, ValueError):
    """A configuration value is out of its allowed range or of the wrong kind."""


class TraceFormatError(FragSimError, ValueError):
    """A trace file is malformed; the message names the file and the 1-based line."""

    def __init__(self, path: str, line: int, message: str) -> None:
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line


class EmptyTraceError(FragSimError, ValueError):
    """A trace file (or a workload) holds no request."""
