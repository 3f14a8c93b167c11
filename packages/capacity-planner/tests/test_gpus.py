"""GPU catalog lookups, sizes and suggestions."""

from __future__ import annotations

import pytest

from capacity_planner import GiB, UnknownGPUError, gpu_from_name, resolve_gpu


@pytest.mark.parametrize(
    ("name", "canonical"),
    [
        ("H100", "H100"),
        ("nvidia h100", "H100"),
        ("h100-sxm", "H100"),
        ("A100-80GB", "A100-80GB"),
        ("a100_40gb", "A100-40GB"),
        ("RTX 4090", "RTX-4090"),
        ("mi300x", "MI300X"),
        ("L4", "L4"),
        ("A10G", "A10G"),
        ("h200", "H200"),
    ],
)
def test_lookup(name: str, canonical: str) -> None:
    assert gpu_from_name(name).name == canonical


def test_every_gpu_has_a_source_and_plausible_memory() -> None:
    from capacity_planner import GPU_CATALOG

    for gpu in GPU_CATALOG:
        assert gpu.source and 10 * GiB < gpu.memory_bytes < 300 * GiB


def test_sizes() -> None:
    assert resolve_gpu("48GiB").memory_bytes == 48 * GiB
    assert resolve_gpu("24GB").memory_bytes == 24 * 10**9
    assert resolve_gpu("17.5G").memory_bytes == int(17.5 * GiB)


def test_unknown_gpu_suggests_close_names() -> None:
    with pytest.raises(UnknownGPUError) as info:
        gpu_from_name("H1000")
    assert "H100" in info.value.suggestions
    assert "did you mean" in str(info.value)
    with pytest.raises(UnknownGPUError):
        gpu_from_name("A100")  # ambiguous: 40 or 80 GB
