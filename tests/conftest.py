"""Test-wide set-up: LiteLLM offline (its bundled model table, no network); Redis fixtures."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NoReturn

import pytest
import redis

from bench.redis_servers import answers, await_answer, terminate

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


# -- Redis fixtures (shared by every test folder) -----------------------------------------------------
# `redis_url`: the shared server (127.0.0.1:6379 or $CTX_TEST_REDIS_URL). `redis_server_factory`:
# private redis-server processes on free ports, for fault tests that kill or pause them.
# When Redis (or the binary) is missing the tests skip, or fail when CTX_REQUIRE_REDIS=1 (CI).


DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379"


def redis_unavailable(message: str) -> NoReturn:
    """Skip, or fail when the run requires Redis (CTX_REQUIRE_REDIS=1, as CI sets)."""
    if os.environ.get("CTX_REQUIRE_REDIS") == "1":
        pytest.fail(f"{message} (CTX_REQUIRE_REDIS=1 requires it)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a reachable Redis server for integration tests."""
    url = os.environ.get("CTX_TEST_REDIS_URL") or DEFAULT_TEST_REDIS_URL
    client = redis.Redis.from_url(url, socket_connect_timeout=1.0, socket_timeout=1.0)
    try:
        client.ping()
    except (redis.RedisError, OSError):
        redis_unavailable(f"Redis not reachable at {url}: start redis-server to run these tests")
    finally:
        client.close()
    return url


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One private ``redis-server`` process (no persistence) that a test may kill and restart."""

    def __init__(self, binary: str, port: int, workdir: Path, extra_args: Sequence[str] = (), config: str = "") -> None:
        self.binary = binary
        self.port = port
        self.workdir = workdir
        self.extra_args = list(extra_args)
        self.config = config  # a config file's text (sentinel mode needs a writable file)
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        if self.proc is not None and self.proc.poll() is None:
            return self
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [self.binary]
        if self.config:
            conf = self.workdir / "redis.conf"
            if not conf.exists():
                conf.write_text(self.config)
            args.append(str(conf))
        args += ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.workdir), "--protected-mode", "no", "--loglevel", "warning", *self.extra_args]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            await_answer(self.proc, self.port, timeout_s)
        except RuntimeError:
            self.stop()
            raise
        return self

    def ping(self) -> bool:
        return answers(self.port, 0.2)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_connect_timeout=1.0, socket_timeout=5.0)

    def kill(self) -> None:
        """SIGKILL: the server vanishes mid-traffic (connections reset, then refused)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc, 5)
        self.proc = None


@pytest.fixture
def redis_server_factory(tmp_path: Path) -> Iterator[Callable[..., RedisServer]]:
    """``factory(extra_args=(), config="")`` starts a private redis-server on a free port.

    ``extra_args`` are appended to the command line (e.g. ``["--cluster-enabled", "yes"]``);
    ``config`` is written to a config file given first (e.g. for ``--sentinel``). All servers are
    stopped after the test.
    """
    binary = shutil.which("redis-server")
    if binary is None:
        redis_unavailable("redis-server binary not found: install Redis to run these tests")
    servers: list[RedisServer] = []

    def factory(extra_args: Sequence[str] = (), config: str = "") -> RedisServer:
        server = RedisServer(binary, free_port(), tmp_path / f"redis-{len(servers)}", extra_args, config)
        servers.append(server)
        return server.start()

    yield factory
    for server in servers:
        server.stop()
