"""Helpers of the cache tests (importable from the test modules and from spawned workers)."""

from __future__ import annotations

import socket
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from litellm_ctx_hook.cache import SummaryEntry
from litellm_ctx_hook.settings import Settings, load_settings


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class CountingClient:
    """Wraps a redis.asyncio-compatible client and counts the commands sent through it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()
        self.log: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if callable(attr) and name not in {"aclose", "pipeline"}:

            def counted(*args: Any, **kwargs: Any) -> Any:
                self.calls[name] += 1
                self.log.append((name, args))
                return attr(*args, **kwargs)

            return counted
        return attr


def make_entry(summary: str = "the user fixed build 42 in src/app.py", atoms: int = 3, **kw: Any) -> SummaryEntry:
    fields: dict[str, Any] = {
        "summary": summary,
        "atoms_covered": atoms,
        "strategy": "conversation_summary",
        "model": "summarizer",
        "prompt_version": "p1",
        "tokens": 12,
        "created_at": time.time(),
    }
    fields.update(kw)
    return SummaryEntry(**fields)


def make_settings(**overrides: Any) -> Settings:
    overrides.setdefault("redis_url", None)
    overrides.setdefault("redis_host", None)
    return load_settings(**overrides)


def digest(n: int) -> str:
    return f"{n:064x}"


def url_with_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
