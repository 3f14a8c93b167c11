"""Planted bug: padding slots (-1) are written, which numpy sends to the cache's last slot."""

import lab06_solution as _solution

slot_mapping = _solution.slot_mapping
gather_kv = _solution.gather_kv
paged_attention = _solution.paged_attention


def write_kv_cache(key, value, key_cache, value_cache, slots):
    bs = key_cache.shape[1]
    key_cache[slots // bs, slots % bs] = key  # BUG: no skip of slot < 0
    value_cache[slots // bs, slots % bs] = value
