"""shared_stats: counts of several processes added up in one Redis hash, within the flush interval."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from litellm_ctx_hook.cache.keys import STATS_KEY
from litellm_ctx_hook.cache.redis_store import RedisStore
from litellm_ctx_hook.proxy.shared_stats import PROCESSING_BUCKETS_MS, SharedStats, bucket_field, percentile_ms


@given(st.lists(st.floats(min_value=0, max_value=20_000), min_size=1, max_size=200), st.floats(0.01, 1.0))
def test_percentile_is_the_bound_of_the_bucket_holding_the_quantile(samples: list[float], q: float) -> None:
    counts = Counter(bucket_field(ms) for ms in samples)
    got = percentile_ms(counts, q)
    assert got is not None
    true = sorted(samples)[max(0, math.ceil(q * len(samples)) - 1)]
    assert got >= true  # an upper bound …
    lower = max([b for b in PROCESSING_BUCKETS_MS if b < got], default=0.0)
    assert true > lower or true == 0  # … of the right bucket


def test_no_samples_no_percentile() -> None:
    assert percentile_ms({}, 0.95) is None


@pytest.fixture
def store(redis_server_factory: Callable[..., Any]) -> tuple[Any, RedisStore]:
    server = redis_server_factory()
    return server, RedisStore.from_url(server.url)


async def test_two_processes_counts_add_up_within_the_interval(store: tuple[Any, RedisStore]) -> None:
    server, redis = store
    engine = {"condensations": 0, "summarizer_calls": 0}
    workers = [SharedStats(redis, lambda: dict(engine), interval_s=0.05) for _ in range(2)]
    for k, w in enumerate(workers):
        w.request(cache="hit", seconds=0.004)
        w.request(cache="miss", seconds=0.3 + k)
        w.request(cache="none", seconds=0.02)
        w.count("rejected")
    engine.update(condensations=3, summarizer_calls=2)
    workers[0].count("errors")
    await asyncio.sleep(0.3)
    got = {k.decode(): int(v) for k, v in server.client().hgetall(STATS_KEY).items()}
    assert got == {
        "requests": 6,
        "rejected": 2,
        "errors": 1,
        "cache_hit": 2,
        "cache_miss": 2,
        "processing_ms_sum": 2 * (4 + 300 + 20) + 1000,
        "processing_le_5": 2,
        "processing_le_25": 2,
        "processing_le_500": 1,
        "processing_le_2500": 1,
        # the engine's counts, once per process that saw them grow
        "condensations": 6,
        "summarizer_calls": 4,
    }
    await redis.aclose()


async def test_engine_counts_are_sent_as_differences_and_survive_a_reset(store: tuple[Any, RedisStore]) -> None:
    server, redis = store
    engine = {"condensations": 5}
    shared = SharedStats(redis, lambda: dict(engine), interval_s=0)
    await shared.flush()
    engine["condensations"] = 7
    await shared.flush()
    engine["condensations"] = 2  # the engine's counters were cleared, then counted 2 more
    await shared.flush()
    assert int(server.client().hget(STATS_KEY, "condensations")) == 5 + 2 + 2
    await redis.aclose()


async def test_a_dead_redis_drops_the_counts_without_raising(store: tuple[Any, RedisStore]) -> None:
    server, redis = store
    shared = SharedStats(redis, dict, interval_s=0)
    server.kill()
    shared.request(cache="hit", seconds=0.01)
    await asyncio.sleep(0.2)
    await shared.flush()  # nothing pending, nothing raised
    assert redis.dropped_writes >= 1
    await redis.aclose()


def test_without_redis_nothing_is_gathered() -> None:
    shared = SharedStats(None, dict)
    shared.request(cache="hit", seconds=0.01)  # no event loop needed either
    shared.count("errors")
    assert not shared._take()
