"""The report stage: what a run measured, and how it leaves the process.

- ``metrics``: :class:`~frag_sim.SimResult`, the waste breakdown of PagedAttention §3
  (Fig. 2: token states, reservation, internal and external fragmentation), admissions
  and preemptions, and the optional time series;
- ``experiment``: the rows and checks a named experiment prints beside its config;
- ``io``: JSON and CSV written atomically (a temp file, then ``os.replace``);
- ``plot``: the README figures (matplotlib, the ``plot`` extra);
- ``events``: the KV-cache events of a prefix-cached paged run, one batch per line, as
  vLLM's ``vllm/distributed/kv_events.py`` publishes them.
"""
