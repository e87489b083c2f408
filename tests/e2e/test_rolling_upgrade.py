"""A rolling upgrade across a cache entry format change: two proxy replicas on one Redis, one writing
the previous entry format (``CONTEXT_CACHE_ENTRY_FORMAT=1``, as while older replicas are still
running) and one writing the current one, under concurrent traffic of growing conversations.

Each replica must read the summaries the other wrote: no failed request, and no recomputation wave —
at most one summariser call per conversation and growth step, however many requests and replicas
saw it.
"""

from __future__ import annotations

import json
import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import openai
import pytest
import redis
from e2e.proxy import ProxyProcess, start_proxy
from e2e.test_hook_e2e import OUTPUT, PROXY_ENV, chatty_conversation, config

from litellm_ctx_hook.cache.entries import FORMAT
from litellm_ctx_hook.testing.fake_upstream import FakeUpstream, is_summarizer_call

CONVERSATIONS = 3
GROWTH_TURNS = (300, 340, 380)  # each step adds 40 turns (all over the 8k window of "small")
REDIS_DB = 13  # this module's own database: the formats of the entries it wrote are counted


def _db_url(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{db}", parts.query, parts.fragment))


def _formats(client: redis.Redis, keys: set[bytes]) -> dict[int, int]:
    """How many of ``keys`` (summary entries) hold each entry format ``v``."""
    out: dict[int, int] = {}
    for key in keys:
        raw = client.get(key)
        if raw is not None:
            v = json.loads(raw)["body"]["v"]
            out[v] = out.get(v, 0) + 1
    return out


def _send(proxy: ProxyProcess, messages: list[dict[str, Any]]) -> str:
    """The request's ``x-ctx-cache`` header (``hit``: every summary it used came from the cache)."""
    client = openai.OpenAI(base_url=proxy.base_url + "/v1", api_key=proxy.master_key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="small", messages=messages, max_tokens=OUTPUT)  # type: ignore[arg-type]
    if not raw.parse().choices[0].message.content:
        raise ValueError("empty reply")
    return str(raw.headers.get("x-ctx-cache", ""))


def test_replicas_of_adjacent_entry_formats_share_summaries(module_upstream: FakeUpstream, redis_url: str) -> None:
    url = _db_url(redis_url, REDIS_DB)
    admin = redis.Redis.from_url(url)
    before = set(admin.scan_iter("ctxhook:v1:sum:*"))
    # one tenant seen by both replicas (each launcher proxy has its own master key)
    env = {**PROXY_ENV, "REDIS_URL": url, "CONTEXT_CACHE_SCOPE": "global"}
    cfg = config(module_upstream.url)
    with (
        start_proxy(cfg, {**env, "CONTEXT_CACHE_ENTRY_FORMAT": str(FORMAT - 1)}) as previous,
        start_proxy(cfg, {**env, "CONTEXT_CACHE_ENTRY_FORMAT": str(FORMAT)}) as current,
    ):
        module_upstream.clear()
        module_upstream.delay_s = 0.3  # the summariser is slow enough for requests to overlap
        runs = [secrets.token_hex(4) for _ in range(CONVERSATIONS)]
        failures: list[str] = []
        handed_over: list[str] = []  # x-ctx-cache of the requests after another replica summarised
        requests = 0

        def send(job: tuple[ProxyProcess, list[dict[str, Any]]]) -> str:
            try:
                return _send(*job)
            except (openai.OpenAIError, ValueError) as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                return "failed"

        with ThreadPoolExecutor(2 * CONVERSATIONS) as pool:
            for step, turns in enumerate(GROWTH_TURNS):
                conversations = []
                for run in runs:
                    messages = chatty_conversation(turns)
                    messages[1]["content"] += f" (run {run})"  # a conversation no earlier run cached
                    conversations.append(messages)
                # every conversation grown by a step reaches one replica first (the formats take
                # turns across conversations and steps), then both at once: the other replica must
                # use what the first wrote
                firsts = [previous if (i + step) % 2 == 0 else current for i in range(len(conversations))]
                list(pool.map(send, zip(firsts, conversations, strict=True)))
                handed_over += pool.map(send, [(proxy, m) for m in conversations for proxy in (previous, current)])
                requests += 3 * len(conversations)
        module_upstream.delay_s = 0
        for proxy in (previous, current):
            assert "litellm-ctx-hook failed" not in proxy.log_text()

    bodies = [r.body for r in module_upstream.requests_to("/chat/completions")]
    summaries = [b for b in bodies if is_summarizer_call(b)]
    main = [b for b in bodies if not is_summarizer_call(b)]
    steps = CONVERSATIONS * len(GROWTH_TURNS)
    print(
        f"rolling upgrade: {requests} requests, {len(failures)} failed, "
        f"{len(summaries)} summariser calls for {steps} conversation growth steps"
    )
    assert failures == []
    assert handed_over == ["hit"] * len(handed_over), "a replica recomputed what the other had written"
    assert len(main) == requests
    assert all(len(b["messages"]) < 2 * GROWTH_TURNS[0] for b in main)  # every request was condensed
    assert 0 < len(summaries) <= steps, f"{len(summaries)} summariser calls for {steps} growth steps"
    written = set(admin.scan_iter("ctxhook:v1:sum:*")) - before
    formats = _formats(admin, written)
    assert set(formats) == {FORMAT - 1, FORMAT}, f"both replicas wrote summaries: {formats}"
    admin.delete(*written)
    admin.close()


@pytest.fixture(autouse=True)
def _upstream_reset(module_upstream: FakeUpstream) -> None:
    module_upstream.delay_s = 0
    module_upstream.fail_status = None
