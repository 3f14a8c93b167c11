"""The installed version (`importlib.metadata`), for `--version` and `__version__`."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("capacity-planner")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
