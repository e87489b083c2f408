"""The in-process LRU with TTL and the in-process lock table, on an injected clock."""

from __future__ import annotations

import threading

import pytest
from cache_support import FakeClock
from hypothesis import given
from hypothesis import strategies as st

from litellm_ctx_hook.cache.memory import LocalLocks, MemoryLRU


def test_entry_expires_after_its_ttl() -> None:
    clock = FakeClock()
    lru: MemoryLRU[str] = MemoryLRU(10, clock)
    lru.put("a", "A", ttl_s=60)
    clock.advance(59.9)
    assert lru.get("a") == "A"
    clock.advance(0.1)
    assert lru.get("a") is None
    assert len(lru) == 0


def test_each_entry_has_its_own_ttl() -> None:
    clock = FakeClock()
    lru: MemoryLRU[str] = MemoryLRU(10, clock)
    lru.put("short", "s", ttl_s=5)
    lru.put("long", "l", ttl_s=500)
    clock.advance(10)
    assert lru.get("short") is None
    assert lru.get("long") == "l"


def test_least_recently_used_is_evicted() -> None:
    lru: MemoryLRU[int] = MemoryLRU(3, FakeClock())
    for i, k in enumerate("abc"):
        lru.put(k, i, ttl_s=100)
    assert lru.get("a") == 0  # a becomes most recent
    lru.put("d", 3, ttl_s=100)
    assert lru.get("b") is None
    assert lru.keys() == ["c", "a", "d"]


def test_expired_entries_are_evicted_before_live_ones() -> None:
    clock = FakeClock()
    lru: MemoryLRU[int] = MemoryLRU(2, clock)
    lru.put("live", 1, ttl_s=100)
    lru.put("dying", 2, ttl_s=1)
    lru.get("dying")  # most recently used, but about to expire
    clock.advance(2)
    lru.put("new", 3, ttl_s=100)
    assert lru.get("live") == 1
    assert lru.get("new") == 3


def test_overwrite_refreshes_value_and_ttl() -> None:
    clock = FakeClock()
    lru: MemoryLRU[str] = MemoryLRU(2, clock)
    lru.put("a", "old", ttl_s=10)
    clock.advance(8)
    lru.put("a", "new", ttl_s=10)
    clock.advance(8)
    assert lru.get("a") == "new"
    assert len(lru) == 1


@pytest.mark.parametrize(("size", "ttl"), [(0, 10.0), (5, 0.0)])
def test_zero_size_or_ttl_stores_nothing(size: int, ttl: float) -> None:
    lru: MemoryLRU[str] = MemoryLRU(size, FakeClock())
    lru.put("a", "A", ttl_s=ttl)
    assert lru.get("a") is None


def test_bounded_under_concurrent_threads() -> None:
    lru: MemoryLRU[int] = MemoryLRU(50, FakeClock())

    def work(base: int) -> None:
        for i in range(2000):
            lru.put(f"{base}-{i % 97}", i, ttl_s=100)
            lru.get(f"{base}-{(i * 7) % 97}")

    threads = [threading.Thread(target=work, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(lru) == 50


def test_lock_is_exclusive_until_released_by_its_owner() -> None:
    locks = LocalLocks(FakeClock())
    assert locks.try_acquire("L", "t1", ttl_s=5)
    assert not locks.try_acquire("L", "t2", ttl_s=5)
    assert not locks.release("L", "t2")  # not the owner
    assert locks.is_held("L")
    assert locks.release("L", "t1")
    assert not locks.is_held("L")
    assert locks.try_acquire("L", "t2", ttl_s=5)


def test_lock_of_a_crashed_holder_expires() -> None:
    clock = FakeClock()
    locks = LocalLocks(clock)
    assert locks.try_acquire("L", "t1", ttl_s=5)
    clock.advance(5)
    assert not locks.is_held("L")
    assert locks.try_acquire("L", "t2", ttl_s=5)
    assert not locks.release("L", "t1")  # the expired owner cannot free the new holder's lock
    assert list(locks.held()) == ["L"]


class ReferenceLRU:
    """The specification of MemoryLRU, written as plainly as possible."""

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.items: dict[str, tuple[float, int]] = {}  # insertion order = recency order

    def get(self, key: str, now: float) -> int | None:
        if key not in self.items:
            return None
        expires_at, value = self.items.pop(key)
        if expires_at <= now:
            return None
        self.items[key] = (expires_at, value)
        return value

    def put(self, key: str, value: int, ttl: float, now: float) -> None:
        self.items.pop(key, None)
        self.items[key] = (now + ttl, value)
        if len(self.items) > self.maxsize:
            self.items = {k: v for k, v in self.items.items() if v[0] > now}
        while len(self.items) > self.maxsize:
            del self.items[next(iter(self.items))]


Op = tuple[str, str, int, float]  # (action, key, value, seconds)
ops = st.lists(
    st.one_of(
        st.tuples(st.just("put"), st.sampled_from("abcdefg"), st.integers(0, 99), st.sampled_from([1.0, 5.0, 50.0])),
        st.tuples(st.just("get"), st.sampled_from("abcdefg"), st.just(0), st.just(0.0)),
        st.tuples(st.just("tick"), st.just(""), st.just(0), st.sampled_from([0.5, 2.0, 10.0])),
    ),
    max_size=60,
)


@given(st.integers(1, 5), ops)
def test_lru_matches_its_reference_model(maxsize: int, script: list[Op]) -> None:
    clock = FakeClock()
    lru: MemoryLRU[int] = MemoryLRU(maxsize, clock)
    ref = ReferenceLRU(maxsize)
    for action, key, value, seconds in script:
        if action == "put":
            lru.put(key, value, ttl_s=seconds)
            ref.put(key, value, seconds, clock.now)
        elif action == "get":
            assert lru.get(key) == ref.get(key, clock.now)
        else:
            clock.advance(seconds)
        assert len(lru) <= maxsize
    assert lru.keys() == [k for k, (exp, _) in ref.items.items() if exp > clock.now]
