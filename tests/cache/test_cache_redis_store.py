"""RedisStore: failures become misses and dropped writes, the breaker opens once, logs once."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import fakeredis.aioredis
import pytest
import redis
from cache_support import FakeClock, digest, make_entry, make_settings

from litellm_ctx_hook.cache import CircuitBreaker, RedisStore, SummaryCache

LOGGER = "litellm_ctx_hook.cache"


class FlakyClient:
    """Behaves like a dead Redis (ConnectionError) until ``alive`` is set; counts attempts."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.alive = False
        self.attempts = 0

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.attempts += 1
            if not self.alive:
                raise redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
            return await target(*args, **kwargs)

        return call


class HangingClient:
    async def get(self, key: str) -> bytes:
        await asyncio.sleep(30)
        return b""


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and r.levelno == level]


async def test_outage_is_absorbed_logged_once_and_recovered(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    clock = FakeClock()
    client = FlakyClient(fakeredis.aioredis.FakeRedis(server=fakeredis.FakeServer()))
    store = RedisStore(client, breaker=CircuitBreaker(clock=clock), target="redis://test:6379/0")
    cache = SummaryCache(make_settings(), store, clock)
    entry = make_entry()

    for _ in range(10):  # every call returns normally; L1 keeps working
        await cache.put("team-a", digest(1), entry)
        assert await cache.get("team-a", digest(1)) == entry
        assert await cache.get("team-a", digest(2)) is None
        assert await cache.longest_prefix("team-a", [digest(3)]) is None
        await cache.incr("requests")
        assert await cache.shared_stats() == {}
    assert client.attempts == 3  # then the breaker stopped calling the dead server
    stats = cache.stats()
    assert (stats["redis"], stats["breaker_opens"]) == ("open", 1)
    assert stats["redis_errors"] == {"ConnectionError": 3}
    assert stats["redis_dropped_writes"] == 20  # 10 puts + 10 incrs (failed or refused)
    assert stats["redis_skipped"] == 10 * 5 - 3  # five Redis calls per round (digest 1 is an L1 hit)
    warnings = records(caplog, logging.WARNING)
    assert len(warnings) == 1
    assert "redis://test:6379/0" in warnings[0].getMessage() and "ConnectionError" in warnings[0].getMessage()

    clock.advance(1.0)  # back-off over: one probe, still dead → back-off doubles, no new warning
    assert await cache.get("team-a", digest(2)) is None
    assert client.attempts == 4
    assert store.breaker.backoff_s == 2
    clock.advance(1.0)
    assert await cache.get("team-a", digest(2)) is None
    assert client.attempts == 4

    client.alive = True
    clock.advance(1.0)
    await cache.put("team-a", digest(5), entry)  # the probe succeeds
    assert cache.stats()["redis"] == "up"
    assert await client.inner.exists(f"ctxhook:v1:sum:team-a:{digest(5)}") == 1
    infos = [r for r in records(caplog, logging.INFO) if "reachable again" in r.getMessage()]
    assert len(infos) == 1
    assert len(records(caplog, logging.WARNING)) == 1
    assert "fixed build" not in caplog.text  # no conversation text in logs


async def test_hanging_server_is_cut_by_the_operation_timeout() -> None:
    store = RedisStore(HangingClient(), op_timeout_s=0.1)
    for _ in range(3):
        t0 = time.monotonic()
        assert await store.get("k") is None
        assert time.monotonic() - t0 < 0.5
    assert store.errors["TimeoutError"] == 3
    assert store.state == "open"
    t0 = time.monotonic()
    assert await store.get("k") is None
    assert time.monotonic() - t0 < 0.01


async def test_server_side_errors_do_not_open_the_breaker() -> None:
    fake = fakeredis.aioredis.FakeRedis(server=fakeredis.FakeServer())
    await fake.rpush("ctxhook:v1:sum:team-a:" + digest(1), b"x")  # wrong type under a summary key
    cache = SummaryCache(make_settings(), RedisStore(fake))
    for _ in range(5):
        assert await cache.get("team-a", digest(1)) is None
    assert cache.stats()["redis"] == "up"
    assert cache.stats()["redis_errors"] == {"ResponseError": 5}


async def test_lock_release_is_compare_and_delete() -> None:
    fake = fakeredis.aioredis.FakeRedis(server=fakeredis.FakeServer())
    store = RedisStore(fake)
    assert await store.acquire_lock("L", "mine", 5000) is True
    assert await store.acquire_lock("L", "theirs", 5000) is False
    assert await store.release_lock("L", "theirs") is False
    assert await fake.get("L") == b"mine"
    assert await store.release_lock("L", "mine") is True
    assert await fake.exists("L") == 0
    assert await store.release_lock("L", "mine") is False


async def test_hgetall_skips_non_numeric_fields() -> None:
    fake = fakeredis.aioredis.FakeRedis(server=fakeredis.FakeServer())
    await fake.hset("h", mapping={"a": 3, "b": "x"})
    assert await RedisStore(fake).hgetall("h") == {"a": 3}


async def test_aclose_never_raises() -> None:
    async def broken() -> None:
        raise redis.ConnectionError("gone")

    await RedisStore(HangingClient(), close=broken).aclose()


async def test_cancellation_propagates_and_frees_the_probe() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(clock=clock)
    for _ in range(3):
        breaker.record_failure()
    clock.advance(1)
    store = RedisStore(HangingClient(), breaker=breaker, op_timeout_s=10)
    task = asyncio.create_task(store.get("k"))  # the half-open probe
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.allow()  # the next caller may probe at once
