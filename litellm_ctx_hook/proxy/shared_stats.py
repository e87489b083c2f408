"""Counts of what the plugin did, added up over every worker and replica in one Redis hash.

The hook adds each request's outcome here; within ``CONTEXT_STATS_FLUSH_INTERVAL`` seconds, and
at most once per interval, the counts gathered since the last flush (and the engine's condensation
and summariser counts, as differences) go to the hash ``ctxhook:v1:stats`` with one pipelined
``HINCRBY`` round trip, in the background. ``litellm-ctx health`` and ``litellm-ctx stats`` read the hash. Without
Redis nothing is sent. A failed flush drops its counts (they are statistics, not state).

Field names (all integers): ``requests``, ``rejected``, ``invalid``, ``errors``, ``cache_hit``,
``cache_miss``, ``processing_ms_sum``, ``processing_le_<ms>`` (requests that took at most ``<ms>``
and more than the bucket below; ``processing_le_inf`` for the rest), and the engine counts
:data:`ENGINE_FIELDS`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping

from ..cache.keys import STATS_KEY
from ..cache.redis_store import RedisStore

log = logging.getLogger("litellm_ctx_hook")

PROCESSING_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
ENGINE_FIELDS = ("condensations", "condensation_failures", "summarizer_calls", "summarizer_failures", "fallbacks")


def bucket_field(ms: float) -> str:
    """The ``processing_le_<ms>`` field a request of ``ms`` milliseconds is counted in."""
    for bound in PROCESSING_BUCKETS_MS:
        if ms <= bound:
            return f"processing_le_{bound}"
    return "processing_le_inf"


def percentile_ms(counts: Mapping[str, int], q: float) -> float | None:
    """The upper bound of the bucket holding the ``q`` quantile (``None`` without requests)."""
    buckets = [(float(b), counts.get(f"processing_le_{b}", 0)) for b in PROCESSING_BUCKETS_MS]
    buckets.append((float("inf"), counts.get("processing_le_inf", 0)))
    total = sum(n for _, n in buckets)
    if total == 0:
        return None
    seen = 0
    for bound, n in buckets:
        seen += n
        if seen >= q * total:
            return bound
    return buckets[-1][0]


class Growth:
    """How much each of some ever-growing counts grew since the previous look (after a reset to
    zero, the count itself)."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def since_last(self, counts: Mapping[str, int]) -> dict[str, int]:
        out: dict[str, int] = {}
        for name, value in counts.items():
            before = self._seen.get(name, 0)
            self._seen[name] = value
            grown = value - before if value >= before else value
            if grown:
                out[name] = grown
        return out


class SharedStats:
    """Gathers counts in process and adds them to Redis in the background (never raises).

    A count arriving while no flush is due schedules one for ``interval_s`` after the previous
    flush, so counts reach Redis within ``interval_s`` even when traffic stops, and at most one
    flush per interval runs however busy the process is.
    """

    def __init__(
        self,
        redis: RedisStore | None,
        engine_counts: Callable[[], Mapping[str, int]],
        *,
        interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._engine_counts = engine_counts
        self._interval_s = interval_s
        self._clock = clock
        self._pending: Counter[str] = Counter()
        self._engine_growth = Growth()
        self._last_flush = clock()
        self._scheduled = False  # a flush is waiting for its time or running
        self._task: asyncio.Task[None] | None = None

    def request(self, *, cache: str, seconds: float) -> None:
        """One request the hook managed (or analysed): its cache outcome and processing time."""
        if self._redis is None:
            return
        ms = seconds * 1000
        self._pending["requests"] += 1
        self._pending["processing_ms_sum"] += round(ms)
        self._pending[bucket_field(ms)] += 1
        if cache in ("hit", "miss"):
            self._pending[f"cache_{cache}"] += 1
        self._schedule()

    def count(self, name: str) -> None:
        """One ``rejected``, ``invalid`` or ``errors`` event."""
        if self._redis is None:
            return
        self._pending[name] += 1
        self._schedule()

    def _schedule(self) -> None:
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no running loop (library use): the counts wait for the next request
            return
        self._scheduled = True
        delay = max(0.0, self._last_flush + self._interval_s - self._clock())
        loop.call_later(delay, self._start, loop)

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._task = loop.create_task(self._flush_then_reschedule())

    async def _flush_then_reschedule(self) -> None:
        try:
            await self.flush()
        finally:
            self._scheduled = False
            if self._pending:
                self._schedule()

    def _take(self) -> dict[str, int]:
        """The counts since the last flush, engine differences included; resets them."""
        out = Counter(self._pending)
        self._pending.clear()
        out.update(self._engine_growth.since_last(self._engine_counts()))
        return {k: v for k, v in out.items() if v}

    async def flush(self) -> None:
        """Add the gathered counts to the shared hash now."""
        self._last_flush = self._clock()
        if self._redis is None:
            return
        counts = self._take()
        if not counts:
            return
        try:
            await self._redis.hincrby_many(STATS_KEY, counts)
        except Exception as exc:  # statistics must never disturb a request
            log.debug("shared stats not written: %s", type(exc).__name__)
