"""Private Redis servers for benchmarks and end-to-end tests: one standalone ``redis-server``, or a
local Redis Cluster of three masters (``--cluster-enabled yes`` + ``redis-cli --cluster create``).

    with standalone() as server:            # server.url: redis://127.0.0.1:<port>/0
        ...
    with cluster(masters=3) as servers:     # servers.url: redis+cluster://127.0.0.1:<port>
        ...

No persistence, bound to 127.0.0.1, stopped (SIGTERM, then SIGKILL) on exit; each in its own
temporary directory. ``info(section)`` sums ``INFO`` over every node.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis


class RedisUnavailableError(RuntimeError):
    """``redis-server`` (or ``redis-cli`` for a cluster) is not installed or did not start."""


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_port() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    for _ in range(200):
        port = random.randint(20000, 50000)
        if _bindable(port) and _bindable(port + 10000):
            return port
    raise RedisUnavailableError("no free port pair for redis-server")


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RedisUnavailableError(f"{name} not found: install Redis (the redis-server package)")
    return found


def answers(port: int, timeout_s: float) -> bool:
    """Whether a Redis server on ``port`` (localhost) answers PING within ``timeout_s``."""
    client = redis.Redis(port=port, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


@dataclass
class Node:
    port: int
    process: subprocess.Popen[bytes]

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=1.0, socket_timeout=10.0)

    def ping(self) -> bool:
        return answers(self.port, 1.0)

    def stop(self) -> None:
        terminate(self.process, 10)


def terminate(process: subprocess.Popen[bytes], timeout: float) -> None:
    """Stop ``process`` if it still runs: SIGTERM, then SIGKILL after ``timeout`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)


def await_answer(process: subprocess.Popen[bytes], port: int, timeout: float) -> None:
    """Wait until the redis-server ``process`` answers PING on ``port``; :class:`RedisUnavailableError`
    if it exits or is still silent after ``timeout`` seconds (the caller stops it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RedisUnavailableError(f"redis-server on port {port} exited with {process.returncode}")
        if answers(port, 1.0):
            return
        time.sleep(0.02)
    raise RedisUnavailableError(f"redis-server on port {port} did not answer within {timeout} s")


@dataclass
class Servers:
    """Running nodes; ``url`` is what ``REDIS_URL`` should be for the plugin."""

    nodes: list[Node]
    cluster: bool
    workdir: Path
    _tmp: tempfile.TemporaryDirectory[str] = field(repr=False)

    @property
    def url(self) -> str:
        port = self.nodes[0].port
        return f"redis+cluster://127.0.0.1:{port}" if self.cluster else f"redis://127.0.0.1:{port}/0"

    def info(self, section: str) -> dict[str, Any]:
        """``INFO <section>`` summed over the nodes (numbers added, other values from the first node)."""
        total: dict[str, Any] = {}
        for node in self.nodes:
            client = node.client()
            try:
                for key, value in client.info(section).items():
                    if isinstance(value, dict):
                        into = total.setdefault(key, {})
                        for k, v in value.items():
                            into[k] = into.get(k, 0) + v if isinstance(v, int | float) else v
                    elif isinstance(value, int | float) and not isinstance(value, bool):
                        total[key] = total.get(key, 0) + value
                    else:
                        total.setdefault(key, value)
            finally:
                client.close()
        return total

    def keys(self, pattern: str) -> list[bytes]:
        out: list[bytes] = []
        for node in self.nodes:
            client = node.client()
            try:
                out += list(client.scan_iter(match=pattern, count=1000))
            finally:
                client.close()
        return out

    def reset_stats(self) -> None:
        for node in self.nodes:
            client = node.client()
            try:
                client.config_resetstat()
            finally:
                client.close()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        self._tmp.cleanup()


def _start_node(binary: str, workdir: Path, extra: list[str]) -> Node:
    port = _free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    args += ["--dir", str(workdir), "--protected-mode", "no", "--loglevel", "warning", *extra]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    node = Node(port, process)
    try:
        await_answer(process, port, 10)
    except RedisUnavailableError:
        node.stop()
        raise
    return node


def _wait_cluster_ok(nodes: list[Node], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        states = []
        for node in nodes:
            client = node.client()
            try:
                # typed in some redis-py releases, not in others: a typed alias is right on both
                execute: Callable[..., Any] = client.execute_command
                reply = execute("CLUSTER", "INFO")
            finally:
                client.close()
            states.append(reply.decode() if isinstance(reply, bytes) else str(reply))
        if all("cluster_state:ok" in s for s in states):
            return
        time.sleep(0.1)
    raise RedisUnavailableError("the Redis Cluster did not reach cluster_state:ok")


@contextlib.contextmanager
def standalone() -> Iterator[Servers]:
    binary = _binary("redis-server")
    tmp = tempfile.TemporaryDirectory(prefix="ctx-redis-")
    servers = Servers([], False, Path(tmp.name), tmp)
    try:
        servers.nodes.append(_start_node(binary, servers.workdir / "n0", []))
        yield servers
    finally:
        servers.stop()


@contextlib.contextmanager
def cluster(masters: int = 3) -> Iterator[Servers]:
    """A Redis Cluster of ``masters`` masters without replicas, all slots assigned."""
    binary = _binary("redis-server")
    cli = _binary("redis-cli")
    tmp = tempfile.TemporaryDirectory(prefix="ctx-redis-cluster-")
    servers = Servers([], True, Path(tmp.name), tmp)
    try:
        for k in range(masters):
            node_dir = servers.workdir / f"n{k}"
            extra = ["--cluster-enabled", "yes", "--cluster-config-file", str(node_dir / "nodes.conf")]
            extra += ["--cluster-node-timeout", "5000"]
            servers.nodes.append(_start_node(binary, node_dir, extra))
        addresses = [f"127.0.0.1:{n.port}" for n in servers.nodes]
        done = subprocess.run(
            [cli, "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise RedisUnavailableError("redis-cli --cluster create failed: " + done.stdout.decode()[-500:])
        _wait_cluster_ok(servers.nodes)
        yield servers
    finally:
        servers.stop()
