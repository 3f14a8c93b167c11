"""vLLM's start-up accounting: profile -> subtract -> carve, per rank and per version.

`versions` (the regimes and their defaults), `kv_dtypes` (every `--kv-cache-dtype`),
`layout` (per-layer specs, hybrid unification, grouping), `kv_config` (the carve and the
logged numbers), `startup` (engine settings and the memory terms), `ranks` (every
rank's budget and the minimum over ranks), `verdict` (will it start, and the smallest
change that makes it start).
"""
