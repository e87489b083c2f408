"""The tiered cache the engine uses: L1 in process, L2 Redis (optional), single flight across replicas.

* Summaries live under ``ctxhook:v1:sum:{scope}:{digest}`` for ``CONDENSATION_CACHE_TTL`` seconds,
  analysis results under ``ctxhook:v1:ana:…`` for ``CONTEXT_ANALYSIS_CACHE_TTL`` (0 disables them).
* Reads try L1, then Redis; a Redis hit is copied into L1. Values read from Redis are validated
  (and, with ``CONTEXT_CACHE_SIGNING_KEY``, authenticated); rejected ones count as misses. Entries
  are written in the format ``CONTEXT_CACHE_ENTRY_FORMAT`` names (:mod:`.entries`: this release's,
  or the one before during a rolling upgrade); both are read.
* :meth:`SummaryCache.single_flight` makes one caller compute a missing summary while the others —
  in this process or in other replicas — wait for it: the lock is ``SET ctxhook:v1:lock:… NX PX``
  in Redis, or the in-process lock table when Redis is absent or unreachable.

No method raises because of Redis; the injected ``clock`` drives L1 expiry and waiting deadlines
(it must advance in real time when single flight is used).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ..settings import Settings
from .counters import CacheStats
from .entries import AnalysisEntry, E, SummaryEntry, decode, encode
from .keys import KIND_ANALYSIS, KIND_LOCK, KIND_SUMMARY, STATS_KEY, cache_key
from .memory import LocalLocks, MemoryLRU
from .redis_store import RedisStore

log = logging.getLogger("litellm_ctx_hook.cache")

Compute = Callable[[], Awaitable[SummaryEntry | None]]
Accept = Callable[[SummaryEntry], bool]

#: In-process lifetime of a provisional summary (seconds): another replica's model summary,
#: stored in Redis under the same key, is seen within this time.
PROVISIONAL_L1_TTL_S = 5.0


def _any(entry: SummaryEntry) -> bool:
    return True


class SummaryCache:
    def __init__(
        self,
        settings: Settings,
        redis: RedisStore | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        poll_interval_s: float = 0.03,
        lock_margin_s: float = 2.0,
    ) -> None:
        self.settings = settings
        self.redis = redis
        self._clock = clock
        self._signing_key = settings.context_cache_signing_key or None
        self._summaries: MemoryLRU[SummaryEntry] = MemoryLRU(settings.context_cache_size, clock)
        self._analysis: MemoryLRU[AnalysisEntry] = MemoryLRU(settings.context_cache_size, clock)
        self._locks = LocalLocks(clock)
        self._poll_s = poll_interval_s
        self._lock_margin_s = lock_margin_s
        self._stats = CacheStats()
        self.on_wait: Callable[[str, float], None] | None = None  # (outcome, seconds) of each single-flight wait

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Callable[[], float] = time.monotonic) -> SummaryCache:
        """L1 plus Redis when ``REDIS_URL``/``REDIS_HOST`` is set, else L1 only."""
        return cls(settings, RedisStore.from_settings(settings, clock=clock), clock)

    # -- summaries --------------------------------------------------------------------------------

    async def get(self, scope: str, digest: str) -> SummaryEntry | None:
        key = cache_key(KIND_SUMMARY, scope, digest)
        return await self._read(
            key, "summary", self._summaries, SummaryEntry, self.settings.condensation_cache_ttl, self._l1_ttl
        )

    async def put(self, scope: str, digest: str, entry: SummaryEntry) -> None:
        key = cache_key(KIND_SUMMARY, scope, digest)
        await self._write(key, self._summaries, entry, self.settings.condensation_cache_ttl, self._l1_ttl(entry))

    async def longest_prefix(self, scope: str, digests: Sequence[str]) -> tuple[int, SummaryEntry] | None:
        """The largest ``i`` whose ``digests[i]`` (atoms ``0..i``) has a valid summary, with it.

        L1 is scanned from the longest prefix down; Redis is asked once (one ``MGET``) for the
        prefixes longer than the best L1 hit only.
        """
        if not digests:
            return None
        keys = [cache_key(KIND_SUMMARY, scope, d) for d in digests]
        best: tuple[int, SummaryEntry] | None = None
        for i in range(len(keys) - 1, -1, -1):
            found = self._summaries.get(keys[i])
            if found is not None:
                best = (i, found)
                break
        if best is not None:
            self._stats.hit("summary", "l1")
            if best[0] == len(keys) - 1:
                return best
        else:
            self._stats.miss("summary", "l1")
        if self.redis is None:
            return best
        start = best[0] + 1 if best is not None else 0
        raws = await self.redis.mget(keys[start:]) or []
        for j in range(len(raws) - 1, -1, -1):
            entry = self._decode(raws[j], SummaryEntry, keys[start + j])
            if entry is not None:
                self._stats.hit("summary", "l2")
                self._summaries.put(keys[start + j], entry, self._l1_ttl(entry))
                return start + j, entry
        self._stats.miss("summary", "l2")
        return best

    async def single_flight(
        self, scope: str, digest: str, compute: Compute, budget_s: float, accept: Accept = _any
    ) -> tuple[SummaryEntry | None, str]:
        """Get the summary of ``digest``, computing it at most once across callers and replicas.

        Returns ``(entry, how)``: ``hit`` (already cached), ``computed`` (this caller computed and
        stored it), ``waited`` (another caller did), ``timeout`` (``budget_s`` ran out, computing or
        waiting; a computation is cancelled), ``error`` (``compute`` raised or returned ``None``,
        or the holder gave up without a result). Never raises (except on cancellation). A cached
        entry that ``accept`` refuses (a provisional one) counts as absent.
        """
        deadline = self._clock() + budget_s
        entry = await self.get(scope, digest)
        if entry is not None and accept(entry):
            return self._flown(entry, "hit")
        if budget_s <= 0:
            return self._flown(None, "timeout")
        lock = cache_key(KIND_LOCK, scope, digest)
        token = secrets.token_hex(16)
        ttl_s = budget_s + self._lock_margin_s
        shared = None
        if self.redis is not None:
            shared = await self.redis.acquire_lock(lock, token, int(ttl_s * 1000))
        on_redis = shared is not None
        mine = shared if shared is not None else self._locks.try_acquire(lock, token, ttl_s)
        if mine:
            entry, how = await self._compute(scope, digest, compute, deadline, lock, token, on_redis)
        else:
            waiting = self._clock()
            entry, how = await self._wait(scope, digest, deadline, lock, on_redis, accept)
            if self.on_wait is not None:
                self.on_wait(how, self._clock() - waiting)
        return self._flown(entry, how)

    async def _compute(
        self, scope: str, digest: str, compute: Compute, deadline: float, lock: str, token: str, on_redis: bool
    ) -> tuple[SummaryEntry | None, str]:
        try:
            try:
                async with asyncio.timeout(max(deadline - self._clock(), 0.0)) as window:
                    entry = await compute()
            except TimeoutError:
                if window.expired():
                    log.info("summary of span %s not ready within the time budget", digest[:12])
                    return None, "timeout"
                raise
            if entry is None:
                return None, "error"
            await self.put(scope, digest, entry)  # before releasing: waiters see the lock go after the entry
            return entry, "computed"
        except Exception as exc:
            log.warning("computing the summary of span %s failed: %s", digest[:12], type(exc).__name__)
            return None, "error"
        finally:
            if on_redis and self.redis is not None:
                await self.redis.release_lock(lock, token)
            else:
                self._locks.release(lock, token)

    async def _wait(
        self, scope: str, digest: str, deadline: float, lock: str, on_redis: bool, accept: Accept
    ) -> tuple[SummaryEntry | None, str]:
        key = cache_key(KIND_SUMMARY, scope, digest)

        def usable(entry: SummaryEntry | None) -> SummaryEntry | None:
            return entry if entry is not None and accept(entry) else None

        while (remaining := deadline - self._clock()) > 0:
            await asyncio.sleep(min(self._poll_s, remaining))
            entry = usable(self._summaries.get(key))
            if entry is not None:
                return entry, "waited"
            if on_redis and self.redis is not None:
                raws = await self.redis.mget([key, lock])
                if raws is None:
                    continue  # Redis unavailable now: keep polling until the deadline
                entry = usable(self._decode(raws[0], SummaryEntry, key))
                if entry is None and raws[1] is None:  # lock gone: re-read in case of a non-atomic MGET
                    entry = usable(self._decode(await self.redis.get(key), SummaryEntry, key))
                    if entry is None:
                        return None, "error"  # the holder finished without a result, or died
                if entry is not None:
                    self._summaries.put(key, entry, self._l1_ttl(entry))
                    return entry, "waited"
            elif not self._locks.is_held(lock):
                entry = usable(self._summaries.get(key))
                return (entry, "waited") if entry is not None else (None, "error")
        return None, "timeout"

    def _l1_ttl(self, entry: SummaryEntry) -> float:
        ttl = float(self.settings.condensation_cache_ttl)
        return min(ttl, PROVISIONAL_L1_TTL_S) if entry.provisional else ttl

    def _flown(self, entry: SummaryEntry | None, how: str) -> tuple[SummaryEntry | None, str]:
        self._stats.flight(how)
        return entry, how

    # -- analysis results -------------------------------------------------------------------------

    async def get_analysis(self, scope: str, digest: str) -> dict[str, Any] | None:
        ttl = self.settings.context_analysis_cache_ttl
        if ttl <= 0:
            return None
        key = cache_key(KIND_ANALYSIS, scope, digest)
        entry = await self._read(key, "analysis", self._analysis, AnalysisEntry, ttl)
        return copy.deepcopy(entry.payload) if entry is not None else None

    async def put_analysis(self, scope: str, digest: str, payload: dict[str, Any]) -> None:
        ttl = self.settings.context_analysis_cache_ttl
        if ttl <= 0:
            return
        key = cache_key(KIND_ANALYSIS, scope, digest)
        entry = AnalysisEntry(payload=copy.deepcopy(payload), created_at=time.time())
        await self._write(key, self._analysis, entry, ttl)

    # -- counters and housekeeping ------------------------------------------------------------------

    async def incr(self, counter: str, amount: int = 1) -> None:
        """Add to a local counter and to the shared hash ``ctxhook:v1:stats`` in Redis."""
        self._stats.count(counter, amount)
        if self.redis is not None:
            await self.redis.hincrby(STATS_KEY, counter, amount)

    def stats(self) -> dict[str, Any]:
        out = self._stats.snapshot()
        out["l1"] = {
            "summaries": len(self._summaries),
            "analysis": len(self._analysis),
            "capacity": self._summaries.maxsize,
        }
        r = self.redis
        out["redis"] = "disabled" if r is None else r.state
        out["breaker_opens"] = 0 if r is None else r.breaker.opens
        out["redis_errors"] = {} if r is None else dict(r.errors)
        out["redis_skipped"] = 0 if r is None else r.skipped
        out["redis_dropped_writes"] = 0 if r is None else r.dropped_writes
        return out

    async def shared_stats(self) -> dict[str, int]:
        """The shared counters from Redis, or ``{}`` when Redis is absent or unreachable."""
        if self.redis is None:
            return {}
        return await self.redis.hgetall(STATS_KEY) or {}

    def sizes(self) -> dict[str, int]:
        """Entries held in process (L1): ``cache_summaries``, ``cache_analyses`` and
        ``cache_locks`` (the in-process locks' names, expired ones included until purged)."""
        return {
            "cache_summaries": len(self._summaries),
            "cache_analyses": len(self._analysis),
            "cache_locks": len(self._locks),
        }

    def clear_local(self) -> None:
        """Drop every L1 entry (Redis and the counters are left alone)."""
        self._summaries.clear()
        self._analysis.clear()

    async def aclose(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()

    # -- tier plumbing ------------------------------------------------------------------------------

    async def _read(
        self,
        key: str,
        kind: str,
        l1: MemoryLRU[E],
        cls: type[E],
        ttl: int,
        l1_ttl: Callable[[E], float] | None = None,
    ) -> E | None:
        found = l1.get(key)
        if found is not None:
            self._stats.hit(kind, "l1")
            return found
        self._stats.miss(kind, "l1")
        if self.redis is None:
            return None
        found = self._decode(await self.redis.get(key), cls, key)
        if found is None:
            self._stats.miss(kind, "l2")
            return None
        self._stats.hit(kind, "l2")
        l1.put(key, found, l1_ttl(found) if l1_ttl is not None else ttl)
        return found

    async def _write(self, key: str, l1: MemoryLRU[E], entry: E, ttl: int, l1_ttl: float | None = None) -> None:
        l1.put(key, entry, ttl if l1_ttl is None else l1_ttl)
        if self.redis is None:
            return
        try:
            data = encode(entry, self._signing_key, context=key, fmt=self.settings.context_cache_entry_format)
        except (ValueError, TypeError) as exc:  # a non-JSON value in an analysis payload
            log.warning("cache entry %s not stored in Redis: %s", key.rsplit(":", 1)[-1][:12], type(exc).__name__)
            self._stats.count("encode_errors")
            return
        await self.redis.set(key, data, ttl)

    def _decode(self, raw: bytes | None, cls: type[E], key: str) -> E | None:
        return decode(raw, cls, self._signing_key, context=key, stats=self._stats)
