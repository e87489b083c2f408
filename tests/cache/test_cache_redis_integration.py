"""The cache end to end on the real Redis server (db 15, random tenant scopes, cleaned up)."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import secrets
from collections.abc import AsyncIterator, Callable

import pytest
import redis
import redis.asyncio as aioredis
from cache_support import CountingClient, digest, make_entry, make_settings
from flight_worker import race

from litellm_ctx_hook.cache import RedisStore, SummaryCache, SummaryEntry, cache_key, encode
from litellm_ctx_hook.cache.keys import STATS_KEY

pytestmark = pytest.mark.redis


@pytest.fixture
async def replicas(real_url: str) -> AsyncIterator[Callable[..., SummaryCache]]:
    """``replicas(**settings)``: independent caches (own pools) on the real server."""
    made: list[SummaryCache] = []

    def build(**overrides: object) -> SummaryCache:
        cache = SummaryCache(make_settings(redis_url=real_url, **overrides), RedisStore.from_url(real_url))
        made.append(cache)
        return cache

    yield build
    for cache in made:
        await cache.aclose()


async def test_entry_written_by_one_replica_is_read_by_another(
    replicas: Callable[..., SummaryCache], real_scope: str, real_url: str
) -> None:
    one, two = replicas(condensation_cache_ttl=600), replicas()
    entry = make_entry()
    await one.put(real_scope, digest(1), entry)
    assert await two.get(real_scope, digest(1)) == entry
    assert two.stats()["hits"]["summary"]["l2"] == 1
    client = redis.Redis.from_url(real_url)
    assert 590 <= client.ttl(cache_key("sum", real_scope, digest(1))) <= 600
    client.close()


async def test_longest_prefix_is_one_mget_on_a_real_server(
    replicas: Callable[..., SummaryCache], real_scope: str, real_url: str
) -> None:
    writer = replicas()
    for n in (1, 4, 6):
        await writer.put(real_scope, digest(n), make_entry(f"prefix {n}", atoms=n + 1))
    counting = CountingClient(aioredis.Redis.from_url(real_url))
    reader = SummaryCache(make_settings(), RedisStore(counting))
    try:
        found = await reader.longest_prefix(real_scope, [digest(i) for i in range(12)])
        assert found is not None and (found[0], found[1].summary) == (6, "prefix 6")
        assert dict(counting.calls) == {"mget": 1}
        assert await reader.longest_prefix("team-nobody", [digest(i) for i in range(12)]) is None
    finally:
        await reader.aclose()


async def test_tenants_are_isolated(replicas: Callable[..., SummaryCache], real_scope: str) -> None:
    one, two = replicas(), replicas()
    await one.put(real_scope, digest(1), make_entry("secret"))
    other = real_scope + "x"
    assert await two.get(other, digest(1)) is None
    assert await two.longest_prefix(other, [digest(0), digest(1)]) is None
    assert await two.get(real_scope, digest(1)) is not None


async def test_forged_and_corrupt_entries_are_rejected(
    replicas: Callable[..., SummaryCache], real_scope: str, real_url: str
) -> None:
    signed = replicas(context_cache_signing_key="k")
    await signed.put(real_scope, digest(1), make_entry("genuine"))
    client = aioredis.Redis.from_url(real_url)
    try:
        await client.set(cache_key("sum", real_scope, digest(2)), encode(make_entry("injected"), None))
        tampered = json.loads(await client.get(cache_key("sum", real_scope, digest(1))))
        tampered["body"]["summary"] = "injected"
        await client.set(cache_key("sum", real_scope, digest(3)), json.dumps(tampered))
        await client.set(cache_key("sum", real_scope, digest(4)), b"\x00garbage")
    finally:
        await client.aclose()
    reader = replicas(context_cache_signing_key="k")
    found = await reader.longest_prefix(real_scope, [digest(i) for i in range(5)])
    assert found is not None and (found[0], found[1].summary) == (1, "genuine")
    assert reader.stats()["rejected"] == {"corrupt": 1, "version": 0, "forged": 1, "unsigned": 1}


async def test_lua_lock_release_is_compare_and_delete(real_url: str, real_scope: str) -> None:
    store = RedisStore.from_url(real_url)
    lock = cache_key("lock", real_scope, digest(1))
    try:
        assert await store.acquire_lock(lock, "mine", 5000) is True
        assert await store.acquire_lock(lock, "theirs", 5000) is False
        assert await store.release_lock(lock, "theirs") is False
        assert await store.release_lock(lock, "mine") is True
        assert await store.acquire_lock(lock, "theirs", 5000) is True
        assert await store.release_lock(lock, "theirs") is True
    finally:
        await store.aclose()


async def test_single_flight_across_replicas(replicas: Callable[..., SummaryCache], real_scope: str) -> None:
    caches = [replicas() for _ in range(4)]
    calls = 0

    async def compute() -> SummaryEntry:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.3)
        return make_entry("once")

    results = await asyncio.gather(
        *(caches[i % 4].single_flight(real_scope, digest(9), compute, 3.0) for i in range(24))
    )
    assert calls == 1
    assert sorted(how for _, how in results) == ["computed"] + ["waited"] * 23
    assert len({entry for entry, _ in results}) == 1


async def test_shared_counters(replicas: Callable[..., SummaryCache], real_url: str) -> None:
    name = f"test_counter_{secrets.token_hex(4)}"
    one, two = replicas(), replicas()
    try:
        await one.incr(name, 2)
        await two.incr(name, 3)
        assert (await one.shared_stats())[name] == 5
        assert one.stats()["counters"] == {name: 2}
    finally:
        client = redis.Redis.from_url(real_url)
        client.hdel(STATS_KEY, name)
        client.close()


def test_two_processes_race_single_flight(real_url: str, real_scope: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    counter_key = f"ctxhook:test:computes:{real_scope}"
    procs = [
        ctx.Process(target=race, args=(real_url, real_scope, digest(7), counter_key, barrier, results))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    try:
        outcomes = [results.get(timeout=60) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
    client = redis.Redis.from_url(real_url)
    try:
        assert int(client.get(counter_key) or 0) == 1
    finally:
        client.delete(counter_key)
        client.close()
    assert all(p.exitcode == 0 for p in procs)
    assert sorted(how for _, how, _ in outcomes) == ["computed", "waited"]
    entries = {entry for _, _, entry in outcomes}
    assert len(entries) == 1 and None not in entries
    (winner,) = [pid for pid, how, _ in outcomes if how == "computed"]
    assert f"process {winner}" in json.loads(next(iter(entries)))["summary"]


def test_one_cache_used_from_successive_event_loops(real_url: str, real_scope: str) -> None:
    """Library use runs ``asyncio.run`` per call: the store must follow the loop, not fail."""
    cache = SummaryCache(make_settings(redis_url=real_url), RedisStore.from_url(real_url))
    entry = make_entry("across loops")
    asyncio.run(cache.put(real_scope, digest(1), entry))
    for _ in range(3):
        cache.clear_local()
        assert asyncio.run(cache.get(real_scope, digest(1))) == entry
    stats = cache.stats()
    assert (stats["redis"], stats["redis_errors"], stats["hits"]["summary"]["l2"]) == ("up", {}, 3)
    assert cache.redis is not None and cache.redis.reconnects == 3
