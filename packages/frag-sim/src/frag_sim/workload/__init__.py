"""The workload stage: the requests a run replays, and where they come from.

A :class:`Workload` is what every policy sees: arrival times, prompt and output lengths,
and optionally each prompt's prefix-block ids, the request stream that vLLM's
``benchmarks/benchmark_serving.py`` sends to a server. The modules:

- ``requests``: :class:`Workload`, :class:`LengthDist` and the seeded synthetic
  generator :class:`SyntheticWorkload` (gamma inter-arrival gaps, as
  ``benchmark_serving.py`` draws them);
- ``catalog`` and ``traces``: the public traces (source, license, checksum, fetching) and
  their loaders (Azure LLM inference CSV, Mooncake JSONL);
- ``stream``: a trace read in chunks, so memory follows the requests alive, not the file;
- ``sessions`` and ``prefix``: the structure inside a trace that prefix caching uses
  (multi-turn sessions, shared prefix blocks as in Mooncake's ``hash_ids``).

``frag_sim.workload`` itself exports the request types, as the single module of 0.1 did.
"""

from __future__ import annotations

from .requests import LENGTH_MIXES, LengthDist, SyntheticWorkload, Workload

__all__ = ["LENGTH_MIXES", "LengthDist", "SyntheticWorkload", "Workload"]
