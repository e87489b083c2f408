"""A rolling upgrade across a cache entry format change: two proxy replicas on one Redis under
concurrent traffic of growing conversations, each replica reading the summaries the other wrote.

* Adjacent formats: one replica writes the previous entry format (``CONTEXT_CACHE_ENTRY_FORMAT=1``,
  as while older replicas are still running), the other the current one.
* The upgrade itself: a replica running the last release whose entries are format 1 (its code taken
  from the repository's history: it reads ``v == 1`` only and refuses unknown fields) next to this
  release with ``CONTEXT_CACHE_ENTRY_FORMAT=1``.

No failed request, and no recomputation wave: at most one summariser call per conversation and
growth step, and every request that follows another replica's summary is a cache hit.
"""

from __future__ import annotations

import io
import json
import re
import secrets
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import openai
import pytest
import redis
from e2e.proxy import REPO_ROOT, ProxyProcess, proxy_env, start_proxy
from e2e.test_hook_e2e import OUTPUT, PROXY_ENV, chatty_conversation, config

from litellm_ctx_hook.cache.entries import FORMAT
from litellm_ctx_hook.condensing.summarizer import PROMPT_VERSION
from litellm_ctx_hook.testing.fake_upstream import FakeUpstream, is_summarizer_call

CONVERSATIONS = 3
GROWTH_TURNS = (300, 340, 380)  # each step adds 40 turns (all over the 8k window of "small")
REDIS_DB = 13  # this module's own database: the formats of the entries it wrote are counted
# The last commit whose cache entries are format 1 (before formats were versioned explicitly).
FORMAT1_RELEASE = "21eef53f6f50f1ff305c26419cfb1f323ecb7b2f"


def _db_url(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


def _send(proxy: ProxyProcess, messages: list[dict[str, Any]]) -> str:
    """The request's ``x-ctx-cache`` header (``hit``: every summary it used came from the cache)."""
    client = openai.OpenAI(base_url=proxy.base_url + "/v1", api_key=proxy.master_key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="small", messages=messages, max_tokens=OUTPUT)  # type: ignore[arg-type]
    if not raw.parse().choices[0].message.content:
        raise ValueError("empty reply")
    return str(raw.headers.get("x-ctx-cache", ""))


@dataclass
class Traffic:
    requests: int = 0
    failures: list[str] = field(default_factory=list)
    handed_over: list[str] = field(default_factory=list)  # x-ctx-cache after another replica summarised


def growing_traffic(a: ProxyProcess, b: ProxyProcess) -> Traffic:
    """Conversations that grow step by step; each step reaches one replica first (the replicas take
    turns across conversations and steps), then both at once, which must use what the first wrote."""
    out = Traffic()
    runs = [secrets.token_hex(4) for _ in range(CONVERSATIONS)]

    def send(job: tuple[ProxyProcess, list[dict[str, Any]]]) -> str:
        try:
            return _send(*job)
        except (openai.OpenAIError, ValueError) as exc:
            out.failures.append(f"{type(exc).__name__}: {exc}")
            return "failed"

    with ThreadPoolExecutor(2 * CONVERSATIONS) as pool:
        for step, turns in enumerate(GROWTH_TURNS):
            conversations = []
            for run in runs:
                messages = chatty_conversation(turns)
                messages[1]["content"] += f" (run {run})"  # a conversation no earlier run cached
                conversations.append(messages)
            firsts = [a if (i + step) % 2 == 0 else b for i in range(len(conversations))]
            list(pool.map(send, zip(firsts, conversations, strict=True)))
            out.handed_over += pool.map(send, [(proxy, m) for m in conversations for proxy in (a, b)])
            out.requests += 3 * len(conversations)
    return out


@pytest.fixture
def shared_redis(redis_url: str) -> Iterator[tuple[str, redis.Redis, set[bytes]]]:
    """The URL both replicas use, a client, and the summary keys present before the test."""
    url = _db_url(redis_url, REDIS_DB)
    client = redis.Redis.from_url(url)
    before = set(client.scan_iter("ctxhook:v1:sum:*"))
    yield url, client, before
    written = set(client.scan_iter("ctxhook:v1:sum:*")) - before
    if written:
        client.delete(*written)
    client.close()


def _env(url: str) -> dict[str, str]:
    # one tenant seen by both replicas (each launched proxy has its own master key)
    return {**PROXY_ENV, "REDIS_URL": url, "CONTEXT_CACHE_SCOPE": "global"}


def _formats(client: redis.Redis, before: set[bytes]) -> dict[int, int]:
    """How many summary entries written since ``before`` hold each entry format ``v``."""
    out: dict[int, int] = {}
    for key in set(client.scan_iter("ctxhook:v1:sum:*")) - before:
        raw = client.get(key)
        if raw is not None:
            v = json.loads(raw)["body"]["v"]
            out[v] = out.get(v, 0) + 1
    return out


def _check(
    upstream: FakeUpstream, traffic: Traffic, replicas: tuple[ProxyProcess, ...], label: str, *, shared: bool = True
) -> None:
    """``shared``: the replicas make the same summaries (one summary prompt), so each uses the
    other's; else each release makes its own, once per growth step."""
    bodies = [r.body for r in upstream.requests_to("/chat/completions")]
    summaries = [b for b in bodies if is_summarizer_call(b)]
    main = [b for b in bodies if not is_summarizer_call(b)]
    steps = CONVERSATIONS * len(GROWTH_TURNS)
    print(
        f"{label}: {traffic.requests} requests, {len(traffic.failures)} failed, "
        f"{len(summaries)} summariser calls for {steps} conversation growth steps, "
        f"{traffic.handed_over.count('hit')}/{len(traffic.handed_over)} hand-overs served from the cache"
    )
    assert traffic.failures == []
    for proxy in replicas:
        assert "litellm-ctx-hook failed" not in proxy.log_text()
    assert len(main) == traffic.requests
    assert all(len(b["messages"]) < 2 * GROWTH_TURNS[0] for b in main)  # every request was condensed
    makers = 1 if shared else len(replicas)
    assert 0 < len(summaries) <= makers * steps, f"{len(summaries)} summariser calls for {steps} growth steps"
    if shared:
        assert traffic.handed_over == ["hit"] * len(traffic.handed_over), "a replica recomputed the other's summary"


def test_replicas_of_adjacent_entry_formats_share_summaries(
    module_upstream: FakeUpstream, shared_redis: tuple[str, redis.Redis, set[bytes]]
) -> None:
    url, client, before = shared_redis
    cfg = config(module_upstream.url)
    with (
        start_proxy(cfg, {**_env(url), "CONTEXT_CACHE_ENTRY_FORMAT": str(FORMAT - 1)}) as previous,
        start_proxy(cfg, {**_env(url), "CONTEXT_CACHE_ENTRY_FORMAT": str(FORMAT)}) as current,
    ):
        module_upstream.clear()
        module_upstream.delay_s = 0.3  # the summariser is slow enough for requests to overlap
        traffic = growing_traffic(previous, current)
        module_upstream.delay_s = 0
        _check(module_upstream, traffic, (previous, current), "formats 1 and 2")
    assert set(_formats(client, before)) == {FORMAT - 1, FORMAT}, "both replicas wrote summaries"


@pytest.fixture(scope="module")
def format1_release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package as it was in the last release writing format 1, from the repository's history."""
    git = shutil.which("git")
    if git is None or not (REPO_ROOT / ".git").exists():
        pytest.skip("needs git and the repository's history")
    archive = subprocess.run(
        [git, "-C", str(REPO_ROOT), "archive", "--format=tar", FORMAT1_RELEASE, "litellm_ctx_hook"],
        capture_output=True,
    )
    if archive.returncode != 0:
        pytest.skip(f"commit {FORMAT1_RELEASE[:12]} is not in this clone's history")
    dest = tmp_path_factory.mktemp("format1-release")
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(dest, filter="data")
    # what a proxy started with this PYTHONPATH imports: the older code, without entry formats
    probe = "import litellm_ctx_hook.cache.entries as e; print(e.__file__, hasattr(e, 'FORMAT'))"
    seen = subprocess.run(
        [sys.executable, "-c", probe],
        env=proxy_env("sk-probe", {"PYTHONPATH": str(dest)}),
        cwd=dest,  # as the proxy runs: not from the checkout
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert Path(seen[0]).is_relative_to(dest) and seen[1] == "False", seen
    return dest


def test_upgrade_from_the_release_before_formats(
    module_upstream: FakeUpstream, shared_redis: tuple[str, redis.Redis, set[bytes]], format1_release: Path
) -> None:
    """The older replica reads only format 1 and refuses unknown fields: this release writes
    format 1 beside it (``CONTEXT_CACHE_ENTRY_FORMAT=1``) until no such replica is left."""
    url, client, before = shared_redis
    cfg = config(module_upstream.url)
    with (
        # the older code's deprecated router calls (fixed since) stay warnings under `nox -s newest`
        start_proxy(cfg, {**_env(url), "PYTHONPATH": str(format1_release), "PYTHONWARNINGS": ""}) as older,
        start_proxy(cfg, {**_env(url), "CONTEXT_CACHE_ENTRY_FORMAT": "1"}) as upgraded,
    ):
        module_upstream.clear()
        module_upstream.delay_s = 0.3
        traffic = growing_traffic(older, upgraded)
        module_upstream.delay_s = 0
        # A summary prompt version of its own keys a release's summaries apart (they differ): across
        # such a change each release makes its own, once per growth step, and neither fails.
        shared = _prompt_version(format1_release) == PROMPT_VERSION
        _check(module_upstream, traffic, (older, upgraded), "release before formats and this one", shared=shared)
    assert set(_formats(client, before)) == {1}


def _prompt_version(release: Path) -> str:
    """The summary prompt version of the package under ``release``."""
    for path in release.glob("litellm_ctx_hook/**/summarizer.py"):
        found = re.search(r'^PROMPT_VERSION = "([^"]+)"', path.read_text(), re.MULTILINE)
        if found:
            return found.group(1)
    raise AssertionError(f"no PROMPT_VERSION under {release}")


@pytest.fixture(autouse=True)
def _upstream_reset(module_upstream: FakeUpstream) -> None:
    module_upstream.delay_s = 0
    module_upstream.fail_status = None
