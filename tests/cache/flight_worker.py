"""Run in a spawned process: race ``single_flight`` on a shared digest against other processes."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import redis.asyncio as aioredis
from cache_support import make_entry, make_settings

from litellm_ctx_hook.cache import RedisStore, SummaryCache, SummaryEntry


def race(url: str, scope: str, digest: str, counter_key: str, barrier: Any, results: Any) -> None:
    """Warm up a connection, wait for every racer, then ask for the summary; report (how, entry)."""
    how, entry = asyncio.run(_race(url, scope, digest, counter_key, barrier))
    results.put((os.getpid(), how, entry))


async def _race(url: str, scope: str, digest: str, counter_key: str, barrier: Any) -> tuple[str, str | None]:
    cache = SummaryCache(make_settings(redis_url=url), RedisStore.from_url(url, read_timeout_s=1.0))
    counter = aioredis.Redis.from_url(url)
    try:
        assert cache.redis is not None and await cache.redis.ping()

        async def compute() -> SummaryEntry:
            await counter.incr(counter_key)  # how many processes computed
            await asyncio.sleep(0.5)
            return make_entry(f"summary computed by process {os.getpid()}")

        await asyncio.to_thread(barrier.wait, 30)
        entry, how = await cache.single_flight(scope, digest, compute, budget_s=5.0)
        return how, entry.model_dump_json() if entry is not None else None
    finally:
        await counter.aclose()
        await cache.aclose()
