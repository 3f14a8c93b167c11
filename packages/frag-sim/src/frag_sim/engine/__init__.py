"""The engine stage: the continuous-batching scheduler and the KV memory it allocates from.

``base.Engine`` is the event-driven loop every policy shares: iteration-level scheduling
as in Orca and vLLM (PagedAttention §4.5; in spirit, vLLM's
``vllm/v1/core/sched/scheduler.py``), jumping from event to event and integrating the
metrics over the skipped steps in closed form. The policies plug into it:

- ``contiguous``: the Orca reservation baselines of §6.1 (``max`` / ``pow2`` / ``exact``)
  over a real first-fit or buddy address space;
- ``paged``: blocks on demand from ``block_allocator`` (which mirrors vLLM's
  ``vllm/v1/core/block_pool.py`` and ``kv_cache_manager.py``), reached only through the
  adapter ``kv``, with ``paged_memory`` (the pool as the loop sees it), ``phases``
  (block-boundary phases, what makes event jumping exact) and ``groups`` (sequence
  groups: fork and copy-on-write, §4.4);
- ``contiguous_loop``, ``paged_fast`` and ``paged_loop``: the same loops with the
  per-event hooks inlined, the path the speed figures are measured on;
- ``sharing``: one sequence group at a time on its own pool (§6.3, Fig. 15).

``simulator.simulate`` picks the engine for a :class:`~frag_sim.SimConfig`.
"""
