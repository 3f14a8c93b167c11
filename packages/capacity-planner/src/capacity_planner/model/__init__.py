"""Reading a model: config.json -> `ModelSpec` (layer kinds, MoE/MLA/Mamba sizes, params).

Stage one of the pipeline: `spec` (the dataclasses), `hf_config` (config.json fields and
vLLM's defaults for missing ones), `mixers` (Mamba / linear-attention state shapes),
`catalog` (built-in models, offline).
"""
