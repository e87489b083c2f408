"""The shared tier (L2): a few Redis commands behind a circuit breaker; errors never escape.

Connection forms (details in :mod:`.redis_target`): ``REDIS_URL`` as ``redis://``, ``rediss://``
(TLS), ``unix://``, plus two schemes of this plugin —

* ``redis+sentinel://[:password@]host:port[,host:port…]/service_name[/db]`` (Redis Sentinel,
  via ``redis.asyncio.sentinel``; ``?sentinel_password=…`` when the sentinels need auth), and
* ``redis+cluster://[:password@]host:port[,host:port…]`` (Redis Cluster, via
  ``redis.asyncio.cluster.RedisCluster``; the nodes listed are start-up nodes);

else ``REDIS_HOST``/``REDIS_PORT``/``REDIS_PASSWORD``. The client has its own pool, socket timeouts
of 0.25 s by default (constructor arguments) and no automatic retries.

Every call goes through :meth:`RedisStore._call`: refused at once while the breaker is open,
bounded by ``op_timeout_s``, and on failure turned into a miss (reads) or a dropped write, counted.
One WARNING is logged when an outage starts and one INFO when Redis is back — not per request.
Server-side command errors (``ResponseError``: out of memory, wrong type …) are counted but do not
open the breaker: the server is up.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from redis.exceptions import ResponseError

from ..settings import Settings
from .breaker import BreakerEvent, BreakerState, CircuitBreaker
from .redis_target import RedisConnection, RedisTarget, connect, parse_redis_url, target_from_settings

log = logging.getLogger("litellm_ctx_hook.cache")

T = TypeVar("T")

# Delete the lock only if it still holds our token (it may have expired and been re-taken).
RELEASE_LUA = """
if redis.call('get', KEYS[1]) == ARGV[1] then
    return redis.call('del', KEYS[1])
end
return 0
"""


class _Failed:
    """Marker result of a call that did not reach Redis or failed."""


FAILED = _Failed()


async def _noop() -> None:
    return None


class RedisStore:
    def __init__(
        self,
        client: Any,
        *,
        cluster: bool = False,
        breaker: CircuitBreaker | None = None,
        op_timeout_s: float = 0.6,
        target: str = "redis",
        close: Callable[[], Awaitable[None]] | None = None,
        reconnect: Callable[[], RedisConnection] | None = None,
    ) -> None:
        """Wrap a ``redis.asyncio`` client (or a compatible one such as fakeredis).

        ``reconnect`` builds a fresh client; when given, a call from another event loop than the
        previous one (``asyncio.run`` per call in library use) switches to a new client, since
        redis.asyncio connections belong to the loop that opened them.
        """
        self._client = client
        self._cluster = cluster
        self._reconnect = reconnect
        self._loop: weakref.ref[asyncio.AbstractEventLoop] | None = None
        self.reconnects = 0
        self.breaker = breaker or CircuitBreaker()
        self.op_timeout_s = op_timeout_s
        self.target = target
        self._close = close if close is not None else getattr(client, "aclose", _noop)
        self.errors: Counter[str] = Counter()  # by exception type name
        self.skipped = 0  # calls refused while the breaker was open
        self.dropped_writes = 0

    @classmethod
    def from_target(
        cls,
        target: RedisTarget,
        *,
        connect_timeout_s: float = 0.25,
        read_timeout_s: float = 0.25,
        op_timeout_s: float | None = None,
        breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> RedisStore:
        def reconnect() -> RedisConnection:
            return connect(target, connect_timeout_s=connect_timeout_s, read_timeout_s=read_timeout_s)

        conn = reconnect()
        # a call may need a connect plus a command (sentinel: a discovery round trip too)
        budget = op_timeout_s if op_timeout_s is not None else connect_timeout_s + read_timeout_s + 0.1
        return cls(
            conn.client,
            cluster=conn.cluster,
            breaker=breaker or CircuitBreaker(clock=clock),
            op_timeout_s=budget,
            target=target.describe(),
            close=conn.close,
            reconnect=reconnect,
        )

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisStore:
        return cls.from_target(parse_redis_url(url), **kwargs)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        connect_timeout_s: float = 0.25,
        read_timeout_s: float = 0.25,
        op_timeout_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> RedisStore | None:
        """The configured store, or ``None`` when no Redis is configured (L1 only)."""
        target = target_from_settings(settings)
        if target is None:
            return None
        return cls.from_target(
            target,
            connect_timeout_s=connect_timeout_s,
            read_timeout_s=read_timeout_s,
            op_timeout_s=op_timeout_s,
            clock=clock,
        )

    @property
    def state(self) -> str:
        """``up`` | ``open`` | ``half_open``."""
        s = self.breaker.state
        return "up" if s is BreakerState.CLOSED else s.value

    # -- commands ---------------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        res = await self._call(lambda: self._client.get(key))
        return res if isinstance(res, bytes) else None

    async def mget(self, keys: Sequence[str]) -> list[bytes | None] | None:
        """One round trip (split per slot on Cluster); ``None`` when Redis is unavailable."""
        if not keys:
            return []
        names = list(keys)
        if self._cluster:
            res = await self._call(lambda: self._client.mget_nonatomic(names))
        else:
            res = await self._call(lambda: self._client.mget(names))
        if not isinstance(res, list) or len(res) != len(names):
            return None
        return [v if isinstance(v, bytes) else None for v in res]

    async def set(self, key: str, value: bytes, ttl_s: int) -> bool:
        if ttl_s <= 0:
            return False
        res = await self._call(lambda: self._client.set(key, value, ex=ttl_s))
        if res is FAILED:
            self.dropped_writes += 1
            return False
        return True

    async def acquire_lock(self, key: str, token: str, ttl_ms: int) -> bool | None:
        """``True`` taken, ``False`` held by someone else, ``None`` Redis unavailable."""
        res = await self._call(lambda: self._client.set(key, token, nx=True, px=max(1, ttl_ms)))
        if res is FAILED:
            return None
        return bool(res)

    async def release_lock(self, key: str, token: str) -> bool | None:
        """Compare-and-delete; ``None`` when Redis is unavailable (the lock then expires by itself)."""
        res = await self._call(lambda: self._release(key, token))
        if res is FAILED:
            return None
        return bool(res)

    async def _release(self, key: str, token: str) -> int:
        try:
            return int(await self._client.eval(RELEASE_LUA, 1, key, token))
        except ResponseError as exc:
            if "unknown command" not in str(exc).lower():
                raise
        # No scripting (e.g. fakeredis without Lua): the same compare-and-delete as a transaction.
        async with self._client.pipeline(transaction=True) as pipe:
            await pipe.watch(key)
            current = await pipe.get(key)
            if current is None or current != token.encode("utf-8"):
                await pipe.unwatch()
                return 0
            pipe.multi()
            pipe.delete(key)
            result = await pipe.execute()
            return int(result[0])

    async def hincrby(self, key: str, field: str, amount: int) -> bool:
        res = await self._call(lambda: self._client.hincrby(key, field, amount))
        if res is FAILED:
            self.dropped_writes += 1
            return False
        return True

    async def hincrby_many(self, key: str, amounts: Mapping[str, int]) -> bool:
        """Add to several fields of one hash in one round trip (a pipeline, not a transaction)."""

        async def run() -> Any:
            pipe = self._client.pipeline(transaction=False)
            for field, amount in amounts.items():
                pipe.hincrby(key, field, amount)
            return await pipe.execute()

        res = await self._call(run)
        if res is FAILED:
            self.dropped_writes += 1
            return False
        return True

    async def hgetall(self, key: str) -> dict[str, int] | None:
        res = await self._call(lambda: self._client.hgetall(key))
        if not isinstance(res, dict):
            return None
        out: dict[str, int] = {}
        for k, v in res.items():
            name = k.decode("utf-8", "replace") if isinstance(k, bytes) else str(k)
            try:
                out[name] = int(v)
            except (TypeError, ValueError):
                continue
        return out

    async def ping(self) -> bool:
        return await self._call(lambda: self._client.ping()) is not FAILED

    async def aclose(self) -> None:
        try:
            await self._close()
        except Exception as exc:  # closing a dead connection must not fail shutdown
            log.debug("closing Redis %s failed: %s", self.target, type(exc).__name__)

    # -- the guard --------------------------------------------------------------------------------

    def _follow_loop(self) -> None:
        """Use a client opened for the running event loop (see ``reconnect``)."""
        if self._reconnect is None:
            return
        loop = asyncio.get_running_loop()
        previous = self._loop() if self._loop is not None else None
        if previous is loop:
            return
        if self._loop is not None:  # the old client's connections belong to another loop: leave them
            conn = self._reconnect()
            self._client, self._cluster, self._close = conn.client, conn.cluster, conn.close
            self.reconnects += 1
        self._loop = weakref.ref(loop)

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T | _Failed:
        self._follow_loop()
        if not self.breaker.allow():
            self.skipped += 1
            return FAILED
        try:
            async with asyncio.timeout(self.op_timeout_s):
                result = await fn()
        except asyncio.CancelledError:
            self.breaker.abandon_probe()
            raise
        except ResponseError as exc:
            self.errors[type(exc).__name__] += 1
            self._after(self.breaker.record_success(), None)  # the server answered: it is up
            return FAILED
        except Exception as exc:  # connection refused/reset, timeouts, cluster errors, …
            self.errors[type(exc).__name__] += 1
            self._after(self.breaker.record_failure(), exc)
            return FAILED
        self._after(self.breaker.record_success(), None)
        return result

    def _after(self, event: BreakerEvent | None, exc: BaseException | None) -> None:
        if event is BreakerEvent.OPENED:
            log.warning(
                "Redis cache at %s is unavailable (%s after %d consecutive failures): using the in-process "
                "cache only; will retry in %.1fs",
                self.target,
                type(exc).__name__ if exc else "error",
                self.breaker.threshold,
                self.breaker.backoff_s,
            )
        elif event is BreakerEvent.RECOVERED:
            log.info(
                "Redis cache at %s is reachable again after %.1fs: shared cache re-enabled",
                self.target,
                self.breaker.last_outage_s,
            )
        elif event is BreakerEvent.REOPENED:
            log.debug("Redis cache at %s still unavailable; next retry in %.1fs", self.target, self.breaker.backoff_s)
