"""Helpers for engine tests that run in other processes (multiprocessing 'spawn' imports this)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import redis

from litellm_ctx_hook.cache.store import SummaryCache
from litellm_ctx_hook.condensing.summarizer import SummaryRequest
from litellm_ctx_hook.conversation import Format
from litellm_ctx_hook.engine.engine import ContextEngine
from litellm_ctx_hook.settings import load_settings
from litellm_ctx_hook.testing.fake_summarizer import KeywordSummarizer


class CountingSummarizer(KeywordSummarizer):
    """The keyword summariser, counting its calls in Redis too (so processes share the count)."""

    def __init__(self, redis_url: str | None = None, counter_key: str = "", delay_s: float = 0.0) -> None:
        super().__init__(delay_s)
        self.redis_url = redis_url
        self.counter_key = counter_key

    async def summarize(self, req: SummaryRequest, timeout: float) -> str:
        if self.redis_url:
            redis.Redis.from_url(self.redis_url).incr(self.counter_key)
        return await super().summarize(req, timeout)


def manage_in_process(redis_url: str, counter_key: str, body_json: str, limit: int, out_path: str) -> None:
    """Entry point of a spawned process: manage ``body`` with a Redis-backed engine, write the result."""
    settings = load_settings(redis_url=redis_url, condensation_quality_threshold=0.0)
    summarizer = CountingSummarizer(redis_url, counter_key, delay_s=0.5)

    async def run() -> Any:
        cache = SummaryCache.from_settings(settings)
        engine = ContextEngine(settings, summarizer=summarizer, cache=cache)
        out = await engine.manage(json.loads(body_json), Format.OPENAI, "gpt-4o", limit=limit, scope="team-x")
        await cache.aclose()
        return out.body

    body = asyncio.run(run())
    with open(out_path, "w", encoding="utf-8") as fh:
        json.dump(body, fh, sort_keys=True)


def manage_turns_in_process(redis_url: str, bodies_json: str, limit: int, scope: str, out_path: str) -> None:
    """Entry point of a spawned process: a replica without a turn memo (``CONTEXT_CACHE_SIZE=0``)
    on a shared Redis manages each request in turn; writes the JSON bytes of each message list sent."""
    settings = load_settings(redis_url=redis_url, context_cache_size=0, context_speculative_condensation=False)

    async def run() -> list[str]:
        cache = SummaryCache.from_settings(settings)
        engine = ContextEngine(settings, summarizer=CountingSummarizer(), cache=cache)
        sent = []
        for body in json.loads(bodies_json):
            out = await engine.manage(body, Format.OPENAI, "gpt-4o", limit=limit, scope=scope)
            sent.append(json.dumps(out.body["messages"]))
        await cache.aclose()
        return sent

    with open(out_path, "w", encoding="utf-8") as fh:
        json.dump(asyncio.run(run()), fh)
