"""GPU catalog: the total memory vLLM sees on one device, by name or by size.

vLLM sizes everything from `torch.cuda.mem_get_info()`'s *total* (`MemorySnapshot` in
`vllm/utils/mem_utils.py`), which is a little below the marketing capacity: an "80 GB"
H100 reports 79.22 GiB. Where a public vLLM log printed that total we use it and cite
the issue; otherwise the value is the usual `torch` total for that board and is marked
approximate (`logged=False`). Any other device can be given by size (`--gpu 48GiB`).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from capacity_planner._units import GiB, parse_size
from capacity_planner.errors import UnknownGPUError

__all__ = ["GPU_CATALOG", "GPUSpec", "gpu_from_memory", "gpu_from_name", "resolve_gpu"]


@dataclass(frozen=True)
class GPUSpec:
    """One accelerator as vLLM's memory profiler sees it."""

    name: str
    memory_bytes: int
    vendor: str = "NVIDIA"
    logged: bool = False
    source: str = ""
    aliases: tuple[str, ...] = ()

    @property
    def memory_gib(self) -> float:
        return self.memory_bytes / GiB


def _g(gib_total: float) -> int:
    return round(gib_total * GiB)


_APPROX = "typical torch total for this board (approximate; pass --gpu <size> to override)"

GPU_CATALOG: tuple[GPUSpec, ...] = (
    GPUSpec(
        "H100",
        _g(79.22),
        logged=True,
        source="total_gpu_memory 79.22GiB, vllm-project/vllm PR #10511",
        aliases=("h100-80gb", "h100-sxm", "h100-sxm5", "h100-pcie", "h100-hbm3"),
    ),
    GPUSpec("H100-NVL", _g(93.10), source=_APPROX, aliases=("h100-94gb", "h100nvl")),
    GPUSpec("H200", _g(139.81), source=_APPROX, aliases=("h200-141gb", "h200-sxm")),
    GPUSpec("H20", _g(95.08), source=_APPROX, aliases=("h20-96gb",)),
    GPUSpec(
        "B200",
        _g(178.35),
        logged=True,
        source="torch total 178.35 GiB, unslothai/unsloth issue #3411",
        aliases=("b200-180gb",),
    ),
    GPUSpec(
        "A100-40GB",
        _g(39.38),
        logged=True,
        source="total_gpu_memory (39.38GiB), vllm-project/vllm issue #16570",
        aliases=("a100-40g", "a100-sxm4-40gb", "a100-pcie-40gb", "a100-40"),
    ),
    GPUSpec(
        "A100-80GB",
        _g(79.15),
        source=_APPROX,
        aliases=("a100-80g", "a100-sxm4-80gb", "a100-pcie-80gb", "a100-80"),
    ),
    GPUSpec("L4", _g(22.05), source=_APPROX, aliases=("l4-24gb",)),
    GPUSpec("A10G", _g(21.99), source=_APPROX, aliases=("a10g-24gb", "a10")),
    GPUSpec("L40S", _g(44.52), source=_APPROX, aliases=("l40s-48gb", "l40")),
    GPUSpec("A40", _g(44.35), source=_APPROX, aliases=("a40-48gb",)),
    GPUSpec("RTX-A6000", _g(47.54), source=_APPROX, aliases=("a6000", "rtx-6000-ampere")),
    GPUSpec(
        "RTX-4090",
        _g(23.99),
        logged=True,
        source="24564 MiB = 23.99 GiB per card, vllm-project/vllm issue #7553 (and start-up "
        "logs on 4090s); the 23.55 once derived from a 0.98 budget in vLLM issue #13061 was a "
        "rounded budget, not the total",
        aliases=("4090", "geforce-rtx-4090"),
    ),
    GPUSpec(
        "RTX-3090",
        _g(23.58),
        logged=True,
        source="total_gpu_memory=23.58GiB, vllm-project/vllm issue #10517",
        aliases=("3090", "geforce-rtx-3090"),
    ),
    GPUSpec("RTX-5090", _g(31.36), source=_APPROX, aliases=("5090", "geforce-rtx-5090")),
    GPUSpec("T4", _g(14.58), source=_APPROX, aliases=("tesla-t4",)),
    GPUSpec("V100-16GB", _g(15.77), source=_APPROX, aliases=("v100", "tesla-v100-16gb")),
    GPUSpec("V100-32GB", _g(31.74), source=_APPROX, aliases=("tesla-v100-32gb", "v100s")),
    GPUSpec("MI300X", _g(191.98), vendor="AMD", source=_APPROX, aliases=("mi300x-192gb",)),
    GPUSpec("MI325X", _g(255.98), vendor="AMD", source=_APPROX, aliases=("mi325x-256gb",)),
)


def _key(name: str) -> str:
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    key = re.sub(r"^(nvidia-|amd-|geforce-)+", "", key)
    return key


_INDEX: dict[str, GPUSpec] = {}
for _gpu in GPU_CATALOG:
    for _alias in (_gpu.name, *_gpu.aliases):
        _INDEX[_key(_alias)] = _gpu


def gpu_from_name(name: str) -> GPUSpec:
    """Look a GPU up by catalog name or alias (case, spaces and 'NVIDIA' ignored)."""
    found = _INDEX.get(_key(name))
    if found is not None:
        return found
    close = difflib.get_close_matches(_key(name), list(_INDEX), n=6, cutoff=0.5)
    names: list[str] = []
    for alias in close:
        if _INDEX[alias].name not in names:
            names.append(_INDEX[alias].name)
    if not names:
        names = [g.name for g in GPU_CATALOG if g.name.lower().startswith(_key(name)[:2])]
    raise UnknownGPUError(name, tuple(names[:4]))


def gpu_from_memory(size: str | int, name: str | None = None) -> GPUSpec:
    """A device known only by its total memory ('48GiB', '24GB', or bytes)."""
    num_bytes = size if isinstance(size, int) else parse_size(size, parameter="--gpu")
    if num_bytes <= 0:
        raise UnknownGPUError(str(size), ())
    label = name or (size if isinstance(size, str) else f"{num_bytes / GiB:.2f}GiB")
    return GPUSpec(f"custom ({label})", num_bytes, vendor="?", source="given by size")


def resolve_gpu(text: str) -> GPUSpec:
    """`--gpu` semantics: a catalog name, or a size when the text starts with a digit."""
    if text.strip()[:1].isdigit() and _key(text) not in _INDEX:
        return gpu_from_memory(text)
    return gpu_from_name(text)
