"""A content-addressed cache of expensive, deterministic compile results (docs/cache.md)."""

from edgeq.cache.keys import content_key, digest_arrays, digest_bytes
from edgeq.cache.store import Cache, active_cache, cache_root, using_cache

__all__ = [
    "Cache",
    "active_cache",
    "cache_root",
    "content_key",
    "digest_arrays",
    "digest_bytes",
    "using_cache",
]
