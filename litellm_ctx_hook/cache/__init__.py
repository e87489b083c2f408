"""Summary and analysis caches: L1 in process, L2 Redis, single flight (docs/architecture.md,
"Cache keys and entries").

The pure parts (keys, entries, the LRU, the breaker) import eagerly; the Redis-backed parts
(:class:`SummaryCache`, :class:`RedisStore`, URL parsing) are loaded on first use, so that
``import litellm_ctx_hook.cache.keys`` from the pure core does not import ``redis``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .breaker import BreakerEvent, BreakerState, CircuitBreaker
from .counters import CacheStats
from .entries import AnalysisEntry, SummaryEntry, VersionedEntry, decode, encode
from .keys import (
    KIND_ANALYSIS,
    KIND_LOCK,
    KIND_SUMMARY,
    STATS_KEY,
    CacheKeyError,
    cache_key,
    chain_digests,
    chain_salt,
    key_hash,
    scope_for,
)
from .memory import LocalLocks, MemoryLRU

if TYPE_CHECKING:
    from .redis_store import RedisStore
    from .redis_target import RedisTarget, parse_redis_url, target_from_settings
    from .store import SummaryCache

_LAZY = {
    "RedisStore": ".redis_store",
    "RedisTarget": ".redis_target",
    "parse_redis_url": ".redis_target",
    "target_from_settings": ".redis_target",
    "SummaryCache": ".store",
}

__all__ = [
    "KIND_ANALYSIS",
    "KIND_LOCK",
    "KIND_SUMMARY",
    "STATS_KEY",
    "AnalysisEntry",
    "BreakerEvent",
    "BreakerState",
    "CacheKeyError",
    "CacheStats",
    "CircuitBreaker",
    "LocalLocks",
    "MemoryLRU",
    "RedisStore",
    "RedisTarget",
    "SummaryCache",
    "SummaryEntry",
    "VersionedEntry",
    "cache_key",
    "chain_digests",
    "chain_salt",
    "decode",
    "encode",
    "key_hash",
    "parse_redis_url",
    "scope_for",
    "target_from_settings",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
