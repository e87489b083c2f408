"""Parsing REDIS_URL / REDIS_HOST into a target, and the clients built from it (no server needed)."""

from __future__ import annotations

import pytest
from cache_support import make_settings
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from litellm_ctx_hook.cache import RedisStore, SummaryCache
from litellm_ctx_hook.cache.redis_target import RedisTarget, connect, parse_redis_url, target_from_settings
from litellm_ctx_hook.errors import ConfigurationError


def test_no_redis_configured() -> None:
    assert target_from_settings(make_settings()) is None
    assert RedisStore.from_settings(make_settings()) is None


async def test_from_settings_without_redis_is_l1_only() -> None:
    cache = SummaryCache.from_settings(make_settings())
    assert cache.redis is None
    assert cache.stats()["redis"] == "disabled"
    await cache.aclose()


@pytest.mark.parametrize(
    "url", ["redis://localhost:6379/2", "rediss://:pw@cache.example:6380/0", "unix:///run/redis.sock", "redis://h"]
)
def test_standalone_urls_are_passed_through(url: str) -> None:
    target = parse_redis_url(url)
    assert target.kind == "standalone"
    assert target.url == url
    assert target.ssl == url.startswith("rediss")


def test_describe_never_shows_the_password() -> None:
    for url in (
        "redis://user:hunter2@h:1/0",
        "redis+sentinel://:hunter2@s1:26379/mymaster",
        "redis+cluster://:hunter2@n1:7000",
    ):
        assert "hunter2" not in parse_redis_url(url).describe()
        assert "hunter2" not in repr(parse_redis_url(url))


def test_host_port_password_settings() -> None:
    target = target_from_settings(make_settings(redis_host="cache", redis_port=6390, redis_password="pw"))
    assert target == RedisTarget(kind="standalone", nodes=(("cache", 6390),), password="pw")


def test_redis_url_wins_over_host() -> None:
    target = target_from_settings(make_settings(redis_url="redis://a:1/3", redis_host="b"))
    assert target is not None
    assert target.url == "redis://a:1/3"


def test_sentinel_url() -> None:
    t = parse_redis_url("redis+sentinel://:p%40ss@s1:26379,s2:26380,s3/mymaster/4?sentinel_password=sp")
    assert t.kind == "sentinel"
    assert t.nodes == (("s1", 26379), ("s2", 26380), ("s3", 26379))
    assert (t.service_name, t.db, t.password, t.sentinel_password, t.ssl) == ("mymaster", 4, "p@ss", "sp", False)


def test_sentinel_tls_and_default_db() -> None:
    t = parse_redis_url("rediss+sentinel://user:pw@[::1]:5000/svc")
    assert t.nodes == (("::1", 5000),)
    assert (t.service_name, t.db, t.username, t.password, t.ssl) == ("svc", 0, "user", "pw", True)


def test_cluster_url() -> None:
    t = parse_redis_url("redis+cluster://:pw@n1:7000,n2:7001,n3")
    assert t.kind == "cluster"
    assert t.nodes == (("n1", 7000), ("n2", 7001), ("n3", 6379))
    assert t.password == "pw"
    assert parse_redis_url("rediss+cluster://n1:7000/0").ssl


@pytest.mark.parametrize(
    "url",
    [
        "localhost:6379",
        "http://h:1",
        "redis://h:notaport/0",
        "redis://h:1/db",
        "redis://:pw@/0",
        "redis+sentinel://s1:26379",  # no service name
        "redis+sentinel://s1:26379/svc/x",
        "redis+sentinel://s1:26379/svc/1/2",
        "redis+sentinel://s1:99999/svc",
        "redis+cluster://n1:7000/3",
        "redis+cluster://,n1:7000",
    ],
)
def test_malformed_urls_raise_a_configuration_error_naming_redis_url(url: str) -> None:
    with pytest.raises(ConfigurationError, match="REDIS_URL"):
        parse_redis_url(url)


async def test_connect_builds_a_standalone_client_with_short_timeouts_and_no_retries() -> None:
    conn = connect(parse_redis_url("redis://:pw@127.0.0.1:6399/5"), connect_timeout_s=0.1, read_timeout_s=0.2)
    client = conn.client
    assert isinstance(client, Redis)
    kw = client.connection_pool.connection_kwargs
    assert (kw["socket_connect_timeout"], kw["socket_timeout"], kw["db"], kw["password"]) == (0.1, 0.2, 5, "pw")
    assert kw["retry"].get_retries() == 0
    await conn.close()


async def test_connect_builds_sentinel_and_cluster_clients() -> None:
    sentinel = connect(parse_redis_url("redis+sentinel://s1:26379/svc/2"), connect_timeout_s=0.1, read_timeout_s=0.1)
    assert isinstance(sentinel.client, Redis) and not sentinel.cluster
    assert sentinel.client.connection_pool.service_name == "svc"
    assert sentinel.client.connection_pool.connection_kwargs["db"] == 2
    await sentinel.close()
    cluster = connect(parse_redis_url("redis+cluster://127.0.0.1:7000"), connect_timeout_s=0.1, read_timeout_s=0.1)
    assert isinstance(cluster.client, RedisCluster) and cluster.cluster
    await cluster.close()


async def test_store_built_from_settings_reports_its_target_without_secrets() -> None:
    store = RedisStore.from_settings(make_settings(redis_url="redis://:topsecret@127.0.0.1:6399/1"))
    assert store is not None
    assert store.target == "redis://127.0.0.1:6399/1"
    assert store.op_timeout_s == pytest.approx(0.6)
    await store.aclose()
