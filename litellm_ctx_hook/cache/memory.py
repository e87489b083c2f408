"""The in-process tier (L1): a bounded LRU with per-entry TTL, and a lock table for single flight.

Both take an injectable monotonic clock so tests can move time. Operations are short and guarded
by a ``threading.Lock``: safe from one event loop and from worker threads alike. Expired entries
are dropped lazily (on access, and before evicting live entries when the LRU is full).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

V = TypeVar("V")
_LOCK_PURGE_AT = 1024
_PURGE_EVERY_S = 1.0
Clock = Callable[[], float]


class MemoryLRU(Generic[V]):
    """At most ``maxsize`` live entries, each expiring ``ttl_s`` seconds after it was stored.

    ``maxsize == 0`` disables the cache (every ``put`` is a no-op); ``ttl_s <= 0`` stores nothing.
    """

    def __init__(self, maxsize: int, clock: Clock = time.monotonic) -> None:
        if maxsize < 0:
            raise ValueError(f"maxsize must be >= 0 (got {maxsize})")
        self.maxsize = maxsize
        self._clock = clock
        self._data: OrderedDict[str, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()
        self._next_purge = float("-inf")

    def get(self, key: str) -> V | None:
        now = self._clock()
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            expires_at, value = item
            if expires_at <= now:
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return value

    def put(self, key: str, value: V, ttl_s: float) -> None:
        if self.maxsize == 0 or ttl_s <= 0:
            return
        now = self._clock()
        with self._lock:
            self._data[key] = (now + ttl_s, value)
            self._data.move_to_end(key)
            if len(self._data) > self.maxsize and now >= self._next_purge:
                # At most once a second: a scan per put would make a burst of puts quadratic.
                self._next_purge = now + _PURGE_EVERY_S
                self._purge_expired(now)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def delete(self, key: str) -> None:
        with self._lock:
            self._data.pop(key, None)

    def keys(self) -> list[str]:
        """Live keys, least recently used first."""
        now = self._clock()
        with self._lock:
            self._purge_expired(now)
            return list(self._data)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        now = self._clock()
        with self._lock:
            self._purge_expired(now)
            return len(self._data)

    def _purge_expired(self, now: float) -> None:
        dead = [k for k, (expires_at, _) in self._data.items() if expires_at <= now]
        for k in dead:
            del self._data[k]


class LocalLocks:
    """Named locks with owner tokens and expiry: the in-process twin of ``SET key token NX PX``."""

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._held: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def try_acquire(self, name: str, token: str, ttl_s: float) -> bool:
        """Take ``name`` for ``token`` unless someone holds it and it has not expired."""
        now = self._clock()
        with self._lock:
            held = self._held.get(name)
            if held is not None and held[1] > now:
                return False
            if len(self._held) >= _LOCK_PURGE_AT:  # holders that never released (cancelled mid-release)
                for n in [n for n, (_, exp) in self._held.items() if exp <= now]:
                    del self._held[n]
            self._held[name] = (token, now + ttl_s)
            return True

    def release(self, name: str, token: str) -> bool:
        """Release ``name`` only if ``token`` still owns it (compare-and-delete)."""
        with self._lock:
            held = self._held.get(name)
            if held is None or held[0] != token:
                return False
            del self._held[name]
            return True

    def is_held(self, name: str) -> bool:
        now = self._clock()
        with self._lock:
            held = self._held.get(name)
            if held is None:
                return False
            if held[1] <= now:
                del self._held[name]
                return False
            return True

    def __len__(self) -> int:
        """Names recorded, expired ones included until a purge removes them."""
        with self._lock:
            return len(self._held)

    def held(self) -> Iterable[str]:
        """Names currently held (expired ones excluded)."""
        now = self._clock()
        with self._lock:
            return [n for n, (_, exp) in self._held.items() if exp > now]
