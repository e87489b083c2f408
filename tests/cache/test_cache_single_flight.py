"""Single flight on fakeredis and without Redis: one computation, everyone gets its result."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import fakeredis.aioredis
import pytest
from cache_support import digest, make_entry, make_settings

from litellm_ctx_hook.cache import RedisStore, SummaryCache, SummaryEntry, cache_key

Factory = Callable[..., SummaryCache]
A = "team-a"
D = digest(42)
LOCK = cache_key("lock", A, D)


class Computation:
    """A compute callable that counts its calls and takes ``delay`` seconds."""

    def __init__(self, delay: float = 0.1, result: SummaryEntry | None = None, fail: bool = False) -> None:
        self.calls = 0
        self.delay = delay
        self.result = result if result is not None else make_entry("computed once")
        self.fail = fail

    async def __call__(self) -> SummaryEntry | None:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("summariser exploded")
        return self.result


async def race(
    caches: list[SummaryCache], compute: Computation, n: int, budget: float = 3.0
) -> list[tuple[SummaryEntry | None, str]]:
    return await asyncio.gather(*(caches[i % len(caches)].single_flight(A, D, compute, budget) for i in range(n)))


async def test_many_coroutines_compute_once_via_redis(cache_factory: Factory) -> None:
    replicas = [cache_factory() for _ in range(3)]
    compute = Computation(delay=0.2)
    results = await race(replicas, compute, 30)
    assert compute.calls == 1
    assert all(entry == compute.result for entry, _ in results)
    hows = sorted(how for _, how in results)
    assert hows == ["computed"] + ["waited"] * 29


async def test_many_coroutines_compute_once_without_redis() -> None:
    cache = SummaryCache(make_settings())
    compute = Computation(delay=0.2)
    results = await race([cache], compute, 20)
    assert compute.calls == 1
    assert {entry for entry, _ in results} == {compute.result}
    assert sorted(how for _, how in results) == ["computed"] + ["waited"] * 19
    assert cache.stats()["single_flight"]["waited"] == 19


async def test_cached_entry_is_a_hit_without_computing(cache_factory: Factory) -> None:
    cache = cache_factory()
    entry = make_entry("already there")
    await cache.put(A, D, entry)
    compute = Computation()
    assert await cache.single_flight(A, D, compute, 1.0) == (entry, "hit")
    assert compute.calls == 0


async def test_holder_stores_the_result_and_releases_the_lock(
    cache_factory: Factory, fake_client: fakeredis.aioredis.FakeRedis
) -> None:
    cache = cache_factory()
    seen_ttl: list[int] = []

    async def compute() -> SummaryEntry:
        seen_ttl.append(await fake_client.pttl(LOCK))
        return make_entry("fresh")

    entry, how = await cache.single_flight(A, D, compute, budget_s=1.5)
    assert how == "computed" and entry is not None
    assert 3000 < seen_ttl[0] <= 3500  # budget + margin: a crashed holder's lock expires
    assert await fake_client.exists(LOCK) == 0
    other = cache_factory()
    assert await other.get(A, D) == entry


async def test_compute_error_releases_the_lock_and_never_raises(
    cache_factory: Factory, fake_client: fakeredis.aioredis.FakeRedis, caplog: pytest.LogCaptureFixture
) -> None:
    cache = cache_factory()
    failing = Computation(fail=True)
    results = await race([cache], failing, 5)
    assert failing.calls == 1
    assert sorted(how for _, how in results) == ["error"] * 5  # waiters see the holder leave empty-handed
    assert all(entry is None for entry, _ in results)
    assert await fake_client.exists(LOCK) == 0
    assert "summariser exploded" not in caplog.text and "RuntimeError" in caplog.text
    good = Computation(delay=0)
    assert (await cache.single_flight(A, D, good, 1.0))[1] == "computed"


async def test_compute_returning_none_is_an_error(cache_factory: Factory) -> None:
    cache = cache_factory()

    async def nothing() -> SummaryEntry | None:
        return None

    assert await cache.single_flight(A, D, nothing, 1.0) == (None, "error")
    assert await cache.get(A, D) is None


async def test_slow_compute_is_cut_at_the_budget(
    cache_factory: Factory, fake_client: fakeredis.aioredis.FakeRedis
) -> None:
    cache = cache_factory()
    slow = Computation(delay=5)
    t0 = time.monotonic()
    assert await cache.single_flight(A, D, slow, budget_s=0.2) == (None, "timeout")
    assert time.monotonic() - t0 < 1.0
    assert await fake_client.exists(LOCK) == 0


async def test_waiter_gives_up_at_its_budget(cache_factory: Factory, fake_client: fakeredis.aioredis.FakeRedis) -> None:
    await fake_client.set(LOCK, b"another-replica", px=10_000)  # someone else is computing
    cache = cache_factory()
    compute = Computation()
    t0 = time.monotonic()
    assert await cache.single_flight(A, D, compute, budget_s=0.3) == (None, "timeout")
    assert 0.25 <= time.monotonic() - t0 < 1.0
    assert compute.calls == 0
    assert await fake_client.get(LOCK) == b"another-replica"  # a waiter never deletes someone else's lock


async def test_waiter_returns_early_when_a_crashed_holders_lock_expires(
    cache_factory: Factory, fake_client: fakeredis.aioredis.FakeRedis
) -> None:
    await fake_client.set(LOCK, b"crashed-replica", px=200)
    cache = cache_factory()
    t0 = time.monotonic()
    assert await cache.single_flight(A, D, Computation(), budget_s=3.0) == (None, "error")
    assert time.monotonic() - t0 < 1.0


async def test_waiter_picks_up_a_result_written_by_another_replica(
    cache_factory: Factory, fake_client: fakeredis.aioredis.FakeRedis
) -> None:
    await fake_client.set(LOCK, b"another-replica", px=10_000)
    holder, waiter = cache_factory(), cache_factory()
    entry = make_entry("from the other replica")

    async def finish_elsewhere() -> None:
        await asyncio.sleep(0.15)
        await holder.put(A, D, entry)
        await fake_client.delete(LOCK)

    task = asyncio.create_task(finish_elsewhere())
    assert await waiter.single_flight(A, D, Computation(), budget_s=2.0) == (entry, "waited")
    await task


async def test_zero_budget_does_not_compute(cache_factory: Factory) -> None:
    compute = Computation()
    assert await cache_factory().single_flight(A, D, compute, 0.0) == (None, "timeout")
    assert compute.calls == 0


async def test_unreachable_redis_falls_back_to_the_in_process_lock() -> None:
    store = RedisStore.from_url("redis://127.0.0.1:1/0")  # nothing listens on port 1
    cache = SummaryCache(make_settings(), store)
    compute = Computation(delay=0.2)
    results = await race([cache], compute, 10)
    assert compute.calls == 1
    assert sorted(how for _, how in results) == ["computed"] + ["waited"] * 9
    await cache.aclose()


async def test_cancelled_holder_releases_its_lock(
    cache_factory: Factory, fake_client: fakeredis.aioredis.FakeRedis
) -> None:
    cache = cache_factory()
    task = asyncio.create_task(cache.single_flight(A, D, Computation(delay=5), 10.0))
    await asyncio.sleep(0.1)
    assert await fake_client.exists(LOCK) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await fake_client.exists(LOCK) == 0


async def test_each_wait_is_reported_with_its_outcome_and_duration(cache_factory: Factory) -> None:
    replicas = [cache_factory(), cache_factory()]  # two replicas on one Redis
    waits: list[tuple[str, float]] = []
    for cache in replicas:
        cache.on_wait = lambda how, seconds: waits.append((how, seconds))
    compute = Computation(delay=0.3)
    results = await race(replicas, compute, 4)
    assert compute.calls == 1
    waited = [how for _, how in results if how == "waited"]
    assert len(waited) == 3
    assert [how for how, _ in waits] == waited  # one report per waiter, none for the holder
    assert all(0.2 <= seconds < 3.0 for _, seconds in waits)  # about as long as the holder's computation
