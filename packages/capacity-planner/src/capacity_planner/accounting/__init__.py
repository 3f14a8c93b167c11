"""vLLM's start-up accounting: profile -> subtract -> carve, per rank and per version.

`versions` (the regimes and their defaults), `kv_dtypes` (every `--kv-cache-dtype`),
`settings` (`EngineSettings`), `layout` (per-layer specs, hybrid unification, grouping),
`kv_config` (the carve), `kv_result` (`KVCacheConfig`: the check and the logged lines),
`terms` (weights, activations, sampler, encoder, draft), `memory` (`MemoryProfile`),
`startup` (one rank's budget in both sizing regimes).
"""
