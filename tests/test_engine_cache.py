"""Incremental reuse of cached summaries, tenant scopes, speculation, replicas and Redis faults."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import secrets
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from engine_worker import CountingSummarizer, manage_in_process
from support import settings

from litellm_ctx_hook.analysis.risk import ContextRiskLevel
from litellm_ctx_hook.cache.store import SummaryCache
from litellm_ctx_hook.conversation import Format
from litellm_ctx_hook.engine.engine import ContextEngine

LIMIT = 4000


def chat(turns: int, tag: str = "") -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a travel agent."},
        {"role": "user", "content": f"Plan my trip {tag}."},
    ]
    for k in range(turns):
        msgs.append({"role": "assistant", "content": f"Option {k}: flight HAT{100 + k} at ${200 + k}, seat {k % 30}A."})
        msgs.append({"role": "user", "content": f"Noted option {k}; what about day {k + 1}?"})
    return msgs


def engine(summarizer: CountingSummarizer, cache: SummaryCache | None = None, **overrides: Any) -> ContextEngine:
    s = settings(condensation_quality_threshold=0.0, **overrides)
    return ContextEngine(s, summarizer=summarizer, cache=cache)


def summary_of(body: dict[str, Any]) -> str:
    return next(
        m["content"] for m in body["messages"] if str(m.get("content", "")).startswith("<conversation_summary>")
    )


async def test_growing_conversation_pays_once_per_growth_step() -> None:
    summarizer = CountingSummarizer()
    eng = engine(summarizer, context_speculative_condensation=False)
    outputs, tokens = [], []
    for turns in range(20, 260, 2):  # the client sends its whole history every turn
        out = await eng.manage({"messages": chat(turns)}, Format.OPENAI, "gpt-4o", limit=LIMIT)
        assert out.tokens_after <= LIMIT
        outputs.append(out)
        tokens.append(out.tokens_before)
    first = next(i for i, o in enumerate(outputs) if o.changed)
    growth = tokens[-1] - tokens[first]
    step = (0.8 - 0.6) * LIMIT
    assert summarizer.calls <= growth / step + 1, (summarizer.calls, growth / step)
    # between condensations the summary, hence the prefix, is byte-identical from turn to turn
    stable = sum(
        summary_of(a.body) == summary_of(b.body) for a, b in zip(outputs[first:], outputs[first + 1 :], strict=False)
    )
    assert stable / (len(outputs) - first - 1) >= 0.9
    assert sum(o.cache == "hit" for o in outputs[first:]) >= 0.9 * (len(outputs) - first) - summarizer.calls


async def test_tenant_scopes_do_not_share() -> None:
    summarizer = CountingSummarizer()
    eng = engine(summarizer)
    body = {"messages": chat(120)}
    a = await eng.manage(body, Format.OPENAI, "gpt-4o", limit=LIMIT, scope="team-a")
    b = await eng.manage(body, Format.OPENAI, "gpt-4o", limit=LIMIT, scope="team-b")
    again = await eng.manage(body, Format.OPENAI, "gpt-4o", limit=LIMIT, scope="team-a")
    assert summarizer.calls == 2  # team B's identical conversation did not use team A's summary
    assert (a.cache, b.cache, again.cache) == ("miss", "miss", "hit")


async def test_speculation_at_caution_makes_warning_a_hit() -> None:
    summarizer = CountingSummarizer(delay_s=0.2)
    eng = engine(summarizer)
    caution = None
    for turns in range(20, 200, 2):
        probe = eng.analyze({"messages": chat(turns)}, Format.OPENAI, "gpt-4o", limit=LIMIT)
        if probe.result.risk_level is ContextRiskLevel.CAUTION:
            caution = turns
            break
    assert caution is not None
    out = await eng.manage({"messages": chat(caution)}, Format.OPENAI, "gpt-4o", limit=LIMIT)
    assert not out.changed  # CAUTION changes nothing in the request …
    await eng.drain()
    assert summarizer.calls == 1  # … but the summary was made in the background
    turns = caution
    while eng.analyze({"messages": chat(turns)}, Format.OPENAI, "gpt-4o", limit=LIMIT).result.risk_level is (
        ContextRiskLevel.CAUTION
    ):
        turns += 2
    started = time.perf_counter()
    warning = await eng.manage({"messages": chat(turns)}, Format.OPENAI, "gpt-4o", limit=LIMIT)
    assert time.perf_counter() - started < 0.2  # no summariser wait on the WARNING turn
    assert warning.cache == "hit"
    assert summarizer.calls == 1


@pytest.mark.redis
def test_two_processes_one_summary(redis_url: str, tmp_path: Path) -> None:
    key = f"ctxtest:calls:{secrets.token_hex(6)}"
    body = json.dumps({"messages": chat(150, tag=secrets.token_hex(4))})  # never cached before
    ctx = multiprocessing.get_context("spawn")
    outs = [tmp_path / "a.json", tmp_path / "b.json"]
    procs = [ctx.Process(target=manage_in_process, args=(redis_url, key, body, LIMIT, str(o))) for o in outs]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    client = redis.Redis.from_url(redis_url)
    assert int(client.get(key) or 0) == 1
    client.delete(key)
    assert outs[0].read_bytes() == outs[1].read_bytes()


@pytest.mark.redis
async def test_redis_faults_never_fail_a_request(redis_server_factory: Any) -> None:
    server = redis_server_factory()
    # No in-process tier: every turn goes to Redis (an L1 would remember the managed prefix).
    s = settings(redis_url=server.url, condensation_quality_threshold=0.0, context_cache_size=0)
    cache = SummaryCache.from_settings(s)
    eng = ContextEngine(s, summarizer=CountingSummarizer(), cache=cache)
    results = []
    for k in range(12):
        if k == 3:
            server.stop()  # killed mid-run
        if k == 6:
            server.start()  # back on the same port
        if k == 9:
            redis.Redis.from_url(server.url).execute_command("CLIENT", "PAUSE", "1500")
        started = time.perf_counter()
        out = await eng.manage({"messages": chat(100 + k)}, Format.OPENAI, "gpt-4o", limit=LIMIT, scope="faults")
        results.append((out, time.perf_counter() - started))
    assert all(o.tokens_after <= LIMIT and o.changed for o, _ in results)
    assert all(seconds < 3 for _, seconds in results)
    await asyncio.sleep(0)
    assert cache.stats()["breaker_opens"] >= 1
    await cache.aclose()


async def test_clear_caches_forgets_the_summaries_kept_in_process() -> None:
    for cache in (None, SummaryCache(settings())):
        eng = ContextEngine(settings(context_speculative_condensation=False), cache=cache)
        body = {"messages": chat(120)}
        first = await eng.manage(body, Format.OPENAI, "gpt-4o", limit=LIMIT)
        again = await eng.manage({"messages": chat(120)}, Format.OPENAI, "gpt-4o", limit=LIMIT)
        assert (first.cache, again.cache) == ("miss", "hit")
        eng.clear_caches()
        fresh = await eng.manage({"messages": chat(120)}, Format.OPENAI, "gpt-4o", limit=LIMIT)
        assert fresh.cache == "miss"  # made again: nothing of the first result was kept
        assert fresh.body == first.body


def long_chat(messages: int, tag: str) -> list[dict[str, Any]]:
    """A plain chat of ``messages`` long messages (~450 tokens each)."""
    msgs: list[dict[str, Any]] = [{"role": "system", "content": "You are a travel agent."}]
    for k in range(messages):
        role = "user" if k % 2 == 0 else "assistant"
        facts = " ".join(f"flight HAT{k:03d}{i} costs ${100 + i} on 2024-05-{1 + i % 28:02d};" for i in range(40))
        msgs.append({"role": role, "content": f"{tag} turn {k}: {facts}"})
    return msgs


async def test_a_summary_made_for_a_small_room_is_not_reused_as_is_in_a_large_one() -> None:
    summarizer = CountingSummarizer()
    eng = engine(summarizer, context_speculative_condensation=False)
    body = {"messages": long_chat(400, secrets.token_hex(3))}  # ~180k tokens
    small = await eng.manage(body, Format.OPENAI, "gpt-4o", limit=32_000)
    assert small.changed and small.tokens_after <= 32_000 and summarizer.calls >= 1
    calls = summarizer.calls
    large = await eng.manage(body, Format.OPENAI, "gpt-4o", limit=200_000)
    assert large.risk.rank >= ContextRiskLevel.WARNING.rank  # it needs managing at 200k too
    assert not any(a.startswith("reuse") for a in large.metadata["actions"])  # the 32k summary did not stand
    assert summarizer.calls > calls
    assert summary_of(large.body) != summary_of(small.body)
    assert large.tokens_after > 3 * small.tokens_after  # made for the larger room: much more kept
    # The summary made for 200k does stand in the next 200k request.
    calls = summarizer.calls
    again = await eng.manage({"messages": list(body["messages"])}, Format.OPENAI, "gpt-4o", limit=200_000)
    assert again.cache == "hit" and summarizer.calls == calls
    assert summary_of(again.body) == summary_of(large.body)
