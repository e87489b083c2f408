"""Fault injection on private redis-server processes: killed, paused, down at start, restarted.

Every call must return promptly without raising, the breaker must open (one WARNING per outage)
and close again by itself once the server is back (one INFO).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from cache_support import digest, make_entry, make_settings

from litellm_ctx_hook.cache import CircuitBreaker, RedisStore, SummaryCache, SummaryEntry

pytestmark = pytest.mark.redis

LOGGER = "litellm_ctx_hook.cache"
SCOPE = "team-fault"
T = TypeVar("T")


def fault_cache(url: str) -> SummaryCache:
    """Default timeouts (0.25 s); a shorter breaker back-off than production so tests stay quick."""
    breaker = CircuitBreaker(base_backoff_s=0.3, max_backoff_s=1.0)
    return SummaryCache(make_settings(redis_url=url), RedisStore.from_url(url, breaker=breaker))


async def prompt(call: Awaitable[T], limit_s: float = 1.0) -> T:
    t0 = time.monotonic()
    result = await call
    assert time.monotonic() - t0 < limit_s
    return result


async def until_up(cache: SummaryCache, timeout_s: float = 6.0) -> None:
    deadline = time.monotonic() + timeout_s
    while cache.stats()["redis"] != "up":
        assert time.monotonic() < deadline, f"breaker did not recover: {cache.stats()}"
        await prompt(cache.get(SCOPE, digest(999_999)))
        await asyncio.sleep(0.05)


def messages(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


async def computed(text: str) -> SummaryEntry:
    return make_entry(text)


async def exercise(cache: SummaryCache, i: int) -> None:
    """One request's worth of cache traffic; each call must return within a second."""
    await prompt(cache.put(SCOPE, digest(100 + i), make_entry(f"entry {i}")))
    assert await prompt(cache.get(SCOPE, digest(100 + i))) is not None  # L1 still serves
    assert await prompt(cache.get(SCOPE, digest(999_000 + i))) is None
    await prompt(cache.longest_prefix(SCOPE, [digest(j) for j in range(8)]))
    await prompt(cache.incr("fault_test"))
    await prompt(cache.shared_stats())
    await prompt(cache.put_analysis(SCOPE, digest(i), {"n": i}))
    entry, how = await prompt(cache.single_flight(SCOPE, digest(500 + i), lambda: computed(f"sf {i}"), 0.8))
    assert (entry is not None, how) == (True, "computed")  # the in-process lock takes over


async def test_server_killed_mid_run_then_restarted(
    redis_server_factory: Callable[[], Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    server = redis_server_factory()
    cache = fault_cache(server.url)
    before = make_entry("stored before the crash")
    await cache.put(SCOPE, digest(1), before)
    cache.clear_local()
    assert await cache.get(SCOPE, digest(1)) == before  # from Redis, now also in L1
    assert messages(caplog, logging.WARNING) == []

    server.kill()
    for i in range(12):
        await exercise(cache, i)
    stats = cache.stats()
    assert stats["redis"] in {"open", "half_open"} and stats["breaker_opens"] == 1
    assert await cache.longest_prefix(SCOPE, [digest(0), digest(1)]) == (1, before)  # L1 copy survives
    assert len(messages(caplog, logging.WARNING)) == 1

    server.start()  # same port
    await until_up(cache)
    recovered = [m for m in messages(caplog, logging.INFO) if "reachable again" in m]
    assert len(recovered) == 1
    after = make_entry("stored after the restart")
    await cache.put(SCOPE, digest(2), after)
    other = fault_cache(server.url)  # another replica reads it from Redis
    assert await other.get(SCOPE, digest(2)) == after
    assert len(messages(caplog, logging.WARNING)) == 1
    await other.aclose()
    await cache.aclose()


async def test_paused_server_times_out_quickly_and_recovers(
    redis_server_factory: Callable[[], Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    server = redis_server_factory()
    cache = fault_cache(server.url)
    entry = make_entry("in redis only")
    await cache.put(SCOPE, digest(1), entry)
    cache.clear_local()

    admin = server.client()
    assert admin.execute_command("CLIENT", "PAUSE", "2000")
    paused_at = time.monotonic()
    for i in range(3):  # each call waits at most one socket timeout, then falls back
        assert await prompt(cache.get(SCOPE, digest(1)), limit_s=0.6) is None
        assert cache.stats()["redis_errors"].get("TimeoutError") == i + 1
    assert cache.stats()["redis"] == "open"
    for _ in range(5):  # the breaker now answers at once
        assert await prompt(cache.get(SCOPE, digest(1)), limit_s=0.05) is None
    entry2, how = await prompt(cache.single_flight(SCOPE, digest(2), lambda: computed("during pause"), 1.0))
    assert how == "computed" and entry2 is not None
    assert time.monotonic() - paused_at < 2.0  # all of this happened while Redis was paused
    assert len(messages(caplog, logging.WARNING)) == 1

    await until_up(cache)
    assert await cache.get(SCOPE, digest(1)) == entry  # Redis serves again
    assert cache.stats()["hits"]["summary"]["l2"] == 1
    admin.close()
    await cache.aclose()


async def test_redis_down_at_start_up_then_appears(
    redis_server_factory: Callable[[], Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    server = redis_server_factory()
    server.kill()
    cache = fault_cache(server.url)
    for i in range(5):
        await exercise(cache, i)
    assert cache.stats()["redis"] != "up"
    assert len(messages(caplog, logging.WARNING)) == 1
    server.start()
    await until_up(cache)
    await cache.incr("appeared", 2)
    assert (await cache.shared_stats())["appeared"] == 2
    await cache.aclose()
