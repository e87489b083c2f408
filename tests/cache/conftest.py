"""Fixtures of the cache tests: fakeredis-backed caches with a command counter, and the real
server's db 15 with a random tenant scope whose keys are deleted afterwards."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

import fakeredis
import fakeredis.aioredis
import pytest
import redis
from cache_support import CountingClient, make_settings, url_with_db

from litellm_ctx_hook.cache import CircuitBreaker, RedisStore, SummaryCache


@pytest.fixture
def fake_client() -> fakeredis.aioredis.FakeRedis:
    return fakeredis.aioredis.FakeRedis(server=fakeredis.FakeServer())


@pytest.fixture
def counting(fake_client: fakeredis.aioredis.FakeRedis) -> CountingClient:
    return CountingClient(fake_client)


@pytest.fixture
def cache_factory(
    counting: CountingClient,
) -> Callable[..., SummaryCache]:
    """``cache_factory(**settings)``: a SummaryCache on the shared fakeredis, counted."""

    def build(*, clock: Callable[[], float] = time.monotonic, **overrides: Any) -> SummaryCache:
        store = RedisStore(counting, breaker=CircuitBreaker(clock=clock), target="fakeredis")
        return SummaryCache(make_settings(**overrides), store, clock)

    return build


@pytest.fixture
def real_url(redis_url: str) -> str:
    """The shared test server, database 15 (tests use random scopes and delete their keys)."""
    return url_with_db(redis_url, 15)


@pytest.fixture
def real_scope(real_url: str) -> Iterator[str]:
    """A random tenant scope on the real server; its keys (and ``<scope>*`` ones) are deleted afterwards."""
    scope = f"team-test{secrets.token_hex(6)}"
    yield scope
    client = redis.Redis.from_url(real_url)
    try:
        for key in client.scan_iter(match=f"ctxhook:*{scope}*", count=500):
            client.delete(key)
    finally:
        client.close()
