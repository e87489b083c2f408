"""Where the Redis tier lives: parse the settings into a :class:`RedisTarget`, then build a client.

Accepted forms (``REDIS_URL`` wins over ``REDIS_HOST``/``REDIS_PORT``/``REDIS_PASSWORD``):

* ``redis://[[user]:password@]host[:port][/db]``, ``rediss://…`` (TLS), ``unix:///path/to.sock`` —
  passed to redis-py as is (query options such as ``?ssl_cert_reqs=none`` work);
* ``redis+sentinel://[[user]:password@]host:port[,host:port…]/service_name[/db]`` — Redis Sentinel:
  the sentinels are asked for the current master of ``service_name`` (redis-py follows fail-overs).
  The password is the master's; add ``?sentinel_password=…`` when the sentinels need their own.
  ``rediss+sentinel://`` uses TLS to the master;
* ``redis+cluster://[[user]:password@]host:port[,host:port…]`` — Redis Cluster: the nodes listed
  are start-up nodes, the client discovers the others. Cluster has a single database (no ``/db``).
  ``rediss+cluster://`` uses TLS.

Every client gets its own connection pool (never LiteLLM's), short socket timeouts and no
automatic retries: the breaker in :mod:`.redis_store` decides when to try again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import ConfigurationError
from ..settings import Settings

Kind = Literal["standalone", "sentinel", "cluster"]
_STANDALONE = {"redis", "rediss", "unix"}
_SENTINEL = {"redis+sentinel": False, "rediss+sentinel": True}
_CLUSTER = {"redis+cluster": False, "rediss+cluster": True}


@dataclass(frozen=True, repr=False)
class RedisTarget:
    """A parsed Redis location; ``describe()`` and ``repr()`` are safe to log (no password)."""

    kind: Kind
    nodes: tuple[tuple[str, int], ...] = ()
    url: str | None = None  # standalone given as a URL: handed to redis-py unchanged
    service_name: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_password: str | None = None
    ssl: bool = False

    def __repr__(self) -> str:
        return f"RedisTarget({self.describe()!r})"

    def describe(self) -> str:
        if self.url is not None:
            parts = urlsplit(self.url)
            host = parts.netloc.rpartition("@")[2]
            return f"{parts.scheme}://{host}{parts.path}"
        hosts = ",".join(f"{h}:{p}" for h, p in self.nodes)
        if self.kind == "sentinel":
            return f"sentinel {hosts} service {self.service_name} db {self.db}"
        if self.kind == "cluster":
            return f"cluster {hosts}"
        return f"redis://{hosts}/{self.db}"


@dataclass(frozen=True)
class RedisConnection:
    """A client plus how to close everything it opened."""

    client: Any
    cluster: bool
    close: Callable[[], Awaitable[None]]


def target_from_settings(settings: Settings) -> RedisTarget | None:
    """The configured Redis, or ``None`` when neither ``REDIS_URL`` nor ``REDIS_HOST`` is set."""
    if settings.redis_url:
        return parse_redis_url(settings.redis_url)
    if settings.redis_host:
        return RedisTarget(
            kind="standalone", nodes=((settings.redis_host, settings.redis_port),), password=settings.redis_password
        )
    return None


def parse_redis_url(url: str) -> RedisTarget:
    """Parse one of the URL forms above; a malformed URL raises :class:`ConfigurationError`."""
    try:
        return _parse(url.strip())
    except ConfigurationError:
        raise
    except ValueError as exc:
        raise ConfigurationError(f"REDIS_URL is malformed ({exc}); {_FORMS}") from None


_FORMS = (
    "expected redis://[:password@]host:port/db, rediss://…, unix:///path, "
    "redis+sentinel://host:port[,host:port]/service_name[/db] or redis+cluster://host:port[,host:port]"
)


def _parse(url: str) -> RedisTarget:
    scheme, sep, rest = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise ConfigurationError(f"REDIS_URL has no scheme; {_FORMS}")
    if scheme in _STANDALONE:
        parts = urlsplit(url)
        if scheme != "unix":
            _ = parts.port  # raises ValueError on a non-numeric or out-of-range port
            if not parts.hostname:
                raise ConfigurationError(f"REDIS_URL has no host; {_FORMS}")
            path = parts.path.strip("/")
            if path and not path.isdigit():
                raise ConfigurationError(f"REDIS_URL database {path!r} must be a number; {_FORMS}")
        return RedisTarget(kind="standalone", url=url, ssl=scheme == "rediss")
    if scheme not in _SENTINEL and scheme not in _CLUSTER:
        raise ConfigurationError(f"REDIS_URL scheme {scheme!r} is not supported; {_FORMS}")
    netloc, _, tail = rest.partition("/")
    path, _, query = tail.partition("?")
    userinfo, at, hostlist = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, pw = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(pw) if colon else None
    nodes = tuple(_host_port(h, 26379 if scheme in _SENTINEL else 6379) for h in hostlist.split(","))
    options = {k: v[0] for k, v in parse_qs(query).items()}
    segments = [unquote(s) for s in path.split("/") if s]
    if scheme in _CLUSTER:
        if segments and segments != ["0"]:
            raise ConfigurationError(f"REDIS_URL: Redis Cluster has only database 0 (got /{'/'.join(segments)})")
        return RedisTarget(kind="cluster", nodes=nodes, username=username, password=password, ssl=_CLUSTER[scheme])
    if not segments or len(segments) > 2:
        raise ConfigurationError(f"REDIS_URL: a sentinel URL needs /service_name[/db]; {_FORMS}")
    db = 0
    if len(segments) == 2:
        if not segments[1].isdigit():
            raise ConfigurationError(f"REDIS_URL database {segments[1]!r} must be a number; {_FORMS}")
        db = int(segments[1])
    return RedisTarget(
        kind="sentinel",
        nodes=nodes,
        service_name=segments[0],
        db=db,
        username=username,
        password=password,
        sentinel_password=options.get("sentinel_password"),
        ssl=_SENTINEL[scheme],
    )


def _host_port(text: str, default_port: int) -> tuple[str, int]:
    text = text.strip()
    if text.startswith("["):  # [IPv6]:port
        host, _, after = text[1:].partition("]")
        port_text = after.removeprefix(":")
    else:
        host, _, port_text = text.rpartition(":") if ":" in text else (text, "", "")
    if not host:
        raise ConfigurationError(f"REDIS_URL has an empty host in {text!r}; {_FORMS}")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigurationError(f"REDIS_URL port {port_text!r} is not a valid port; {_FORMS}")
    return host, int(port_text)


def connect(target: RedisTarget, *, connect_timeout_s: float, read_timeout_s: float) -> RedisConnection:
    """Build (lazily connecting) redis.asyncio clients for ``target``."""
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    common: dict[str, Any] = {
        "socket_connect_timeout": connect_timeout_s,
        "socket_timeout": read_timeout_s,
        "retry": Retry(NoBackoff(), 0),
    }
    if target.kind == "cluster":
        from redis.asyncio.cluster import ClusterNode, RedisCluster

        cluster = RedisCluster(
            startup_nodes=[ClusterNode(h, p) for h, p in target.nodes],
            username=target.username,
            password=target.password,
            ssl=target.ssl,
            **common,
        )
        return RedisConnection(cluster, True, cluster.aclose)
    if target.kind == "sentinel":
        from redis.asyncio.sentinel import Sentinel

        sentinel_kwargs = dict(common)
        if target.sentinel_password:
            sentinel_kwargs["password"] = target.sentinel_password
        # redis-py types Sentinel's constructor from 8.2 on and not before: a typed alias is right on both.
        make_sentinel: Callable[..., Sentinel] = Sentinel
        sentinel = make_sentinel(
            list(target.nodes),
            sentinel_kwargs=sentinel_kwargs,
            username=target.username,
            password=target.password,
            db=target.db,
            ssl=target.ssl,
            **common,
        )
        master = sentinel.master_for(target.service_name or "", redis_class=Redis)

        async def close_all() -> None:
            await master.aclose()
            for s in sentinel.sentinels:
                await s.aclose()

        return RedisConnection(master, False, close_all)
    if target.url is not None:
        client = Redis.from_url(target.url, **common)
    else:
        host, port = target.nodes[0]
        client = Redis(host=host, port=port, db=target.db, password=target.password, **common)
    return RedisConnection(client, False, client.aclose)
