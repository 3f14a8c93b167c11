"""Load vLLM's own pure-Python ``BlockPool`` from a downloaded wheel, for side-by-side timing.

``load(wheel)`` reads ``vllm/v1/core/kv_cache_utils.py`` and ``vllm/v1/core/block_pool.py``
straight out of the wheel (``pip download vllm==0.34.0 --no-deps -d DIR``) and executes
them unmodified as modules of a stand-in ``vllm`` package. Their other imports (logger,
envs, config, multimodal utilities, KV events, metrics, request, spec registry) are
stubbed: each stub name is an inert class, which is all that importing those two files
needs. No GPU code, torch or vLLM install is involved, so the benchmark times exactly
the Python that vLLM's scheduler runs for ``get_new_blocks``/``free_blocks``/``touch``.
"""

from __future__ import annotations

import logging
import re
import sys
import types
import zipfile
from pathlib import Path
from typing import Any

__all__ = ["VllmPool", "load"]

FILES = ("vllm/v1/core/kv_cache_utils.py", "vllm/v1/core/block_pool.py")
_STUBBED = (
    "vllm", "vllm.envs", "vllm.config", "vllm.logger", "vllm.multimodal", "vllm.multimodal.utils",
    "vllm.utils", "vllm.utils.hashing", "vllm.utils.math_utils", "vllm.utils.gc_utils",
    "vllm.distributed", "vllm.distributed.kv_events", "vllm.v1", "vllm.v1.core",
    "vllm.v1.core.kv_cache_metrics", "vllm.v1.kv_cache_interface", "vllm.v1.kv_cache_spec_registry",
    "vllm.v1.request", "vllm.v1.token_buffer", "vllm.v1.utils",
)  # fmt: skip


class _Stub(types.ModuleType):
    """A module whose every attribute is an inert class (or what an importer calls)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        if name == "init_logger":
            return logging.getLogger
        if name == "cdiv":
            return lambda a, b: -(a // -b)
        if name == "gc_untrack":
            return lambda obj: obj
        if name.startswith("VLLM_"):
            return False
        if name.startswith("MEDIUM_"):
            return name[len("MEDIUM_") :]
        value = type(name, (), {"__init__": lambda self, *a, **k: None})
        setattr(self, name, value)
        return value


class VllmPool:
    """vLLM's BlockPool module and version, loaded from a wheel."""

    def __init__(self, block_pool: types.ModuleType, kv_cache_utils: types.ModuleType, version: str,
                 commit: str) -> None:  # fmt: skip
        self.block_pool = block_pool
        self.kv_cache_utils = kv_cache_utils
        self.version = version
        self.commit = commit

    def new_pool(self, num_blocks: int, enable_caching: bool = True, block_size: int = 16) -> Any:
        return self.block_pool.BlockPool(num_blocks, enable_caching, block_size)


def load(wheel: str | Path) -> VllmPool:
    """Import vLLM's BlockPool from ``wheel`` without installing vLLM (any earlier copy replaced)."""
    saved = {name: sys.modules.get(name) for name in _STUBBED}
    with zipfile.ZipFile(wheel) as zf:
        sources = {name: zf.read(name).decode() for name in FILES}
        version_py = zf.read("vllm/_version.py").decode()
    version = re.search(r"__version__ = version = '([^']+)'", version_py)
    commit = re.search(r"__commit_id__ = commit_id = '([^']+)'", version_py)
    try:
        for name in _STUBBED:
            mod = _Stub(name)
            mod.__path__ = []  # a package, so submodules resolve
            sys.modules[name] = mod
        loaded = {}
        for path, source in sources.items():
            name = path[:-3].replace("/", ".")
            module = types.ModuleType(name)
            module.__file__ = f"{wheel}!{path}"
            sys.modules[name] = module
            exec(compile(source, module.__file__, "exec"), module.__dict__)
            loaded[name] = module
    finally:
        for name, old in saved.items():  # leave no stand-in vllm behind for other importers
            if old is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = old
        for path in FILES:
            sys.modules.pop(path[:-3].replace("/", "."), None)
    return VllmPool(
        loaded["vllm.v1.core.block_pool"],
        loaded["vllm.v1.core.kv_cache_utils"],
        version.group(1) if version else "?",
        (commit.group(1) if commit else "?").lstrip("g"),
    )
