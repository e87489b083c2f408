"""Sentinel and Cluster URLs against real private servers (a sentinel, a three-node cluster)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest
import redis
from cache_support import digest, free_port, make_entry, make_settings

from bench.redis_servers import RedisUnavailableError
from litellm_ctx_hook.cache import SummaryCache, SummaryEntry, cache_key

pytestmark = pytest.mark.redis


async def check_round_trip(cache: SummaryCache) -> None:
    """Writes, one-MGET prefix lookup, Lua lock release and shared counters all work."""
    for i in (1, 4, 6):
        await cache.put("team-a", digest(i), make_entry(f"prefix {i}"))
    cache.clear_local()
    found = await cache.longest_prefix("team-a", [digest(i) for i in range(9)])
    assert found is not None and (found[0], found[1].summary) == (6, "prefix 6")

    calls = 0

    async def compute() -> SummaryEntry:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.2)
        return make_entry("single flight")

    results = await asyncio.gather(*(cache.single_flight("team-a", digest(50), compute, 2.0) for _ in range(4)))
    assert calls == 1
    assert sorted(how for _, how in results) == ["computed", "waited", "waited", "waited"]
    await cache.incr("topology_test", 2)
    assert (await cache.shared_stats())["topology_test"] == 2
    assert cache.stats()["redis"] == "up" and cache.stats()["redis_errors"] == {}


async def test_sentinel_url(redis_server_factory: Callable[..., Any]) -> None:
    master = redis_server_factory()
    sentinel = redis_server_factory(["--sentinel"], f"sentinel monitor mymaster 127.0.0.1 {master.port} 1\n")
    cache = SummaryCache.from_settings(
        make_settings(redis_url=f"redis+sentinel://127.0.0.1:{sentinel.port}/mymaster/3")
    )
    try:
        await check_round_trip(cache)
    finally:
        await cache.aclose()
    db3 = redis.Redis(port=master.port, db=3)
    assert db3.exists(cache_key("sum", "team-a", digest(6))) == 1  # the master's db 3, found via the sentinel
    db3.close()


def _cluster_node(factory: Callable[..., Any], args: list[str], attempts: int = 3) -> Any:
    """A cluster node on a free port with a free bus port (the default, port + 10000, may not exist
    for high free ports). Both are chosen before the server binds them: another process, or the
    one choice the other, may take one first, and the server then exits; a node is tried again."""
    for _ in range(attempts - 1):
        try:
            return factory([*args, "--cluster-port", str(free_port())])
        except RedisUnavailableError:
            pass
    return factory([*args, "--cluster-port", str(free_port())])


def form_cluster(factory: Callable[..., Any]) -> list[Any]:
    """Three master nodes covering all slots (no replicas)."""
    cli = shutil.which("redis-cli")
    if cli is None:
        pytest.skip("redis-cli not found: needed to form a test cluster")
    args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"]
    nodes = [_cluster_node(factory, args) for _ in range(3)]
    create = [cli, "--cluster", "create", *(f"127.0.0.1:{n.port}" for n in nodes), "--cluster-yes"]
    subprocess.run(create, check=True, capture_output=True, timeout=30)
    deadline = time.monotonic() + 15
    while True:
        states = []
        for n in nodes:
            client = n.client()
            states.append(client.cluster("info")["cluster_state"])
            client.close()
        if all(state == "ok" for state in states):
            return nodes
        assert time.monotonic() < deadline, "test cluster did not converge"
        time.sleep(0.05)


@pytest.fixture
def cluster_nodes(redis_server_factory: Callable[..., Any]) -> list[Any]:
    return form_cluster(redis_server_factory)


async def test_cluster_url(cluster_nodes: list[Any]) -> None:
    url = "redis+cluster://" + ",".join(f"127.0.0.1:{n.port}" for n in cluster_nodes[:2])
    cache = SummaryCache.from_settings(make_settings(redis_url=url))
    try:
        await check_round_trip(cache)
    finally:
        await cache.aclose()
    client = cluster_nodes[0].client()
    slots = {client.cluster("keyslot", cache_key("sum", "team-a", digest(i))) for i in (1, 4, 6)}
    client.close()
    assert len(slots) > 1  # the prefix lookup really spanned several slots
