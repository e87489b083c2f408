"""Replay the real Claude Code sessions request by request against a 64k-token model.

Request k is the conversation up to the k-th assistant call, as the client really sent it (after
Claude Code's own compaction, from its summary on). The engine uses Redis as its only summary
cache (``CONTEXT_CACHE_SIZE=0``: every lookup is an L2 lookup, as for a request landing on a
fresh replica) and a counting fake summariser. Per session: summariser calls against the target
(one per (WARNING − target) × window of growth, plus one), the L2 hit ratio and the share of turns
whose condensed request starts with the previous turn's request byte for byte, both over the
turns after the first condensation. A second pass in the default configuration (in-process tier
too) gives the per-turn overhead with warm caches as a ratio to one cold count of the same
request, and checks that both passes sent the same requests. Then, with speculative condensation
on and a summariser that takes 0.5 s, the latency of the first WARNING turn against the same
request handled as a SAFE turn (by an engine with a larger window that saw the same turns) and
against the median SAFE turn.

    python -m bench.replay            (needs Redis at $REDIS_URL or 127.0.0.1:6379)
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import redis

from litellm_ctx_hook.adapters import adapter_for
from litellm_ctx_hook.analysis.counting import TokenCounter
from litellm_ctx_hook.analysis.risk import ContextRiskLevel
from litellm_ctx_hook.cache.store import SummaryCache
from litellm_ctx_hook.conversation import Format
from litellm_ctx_hook.engine.engine import ContextEngine
from litellm_ctx_hook.planning.actions import SUMMARY_ACTIONS, kind
from litellm_ctx_hook.settings import load_settings
from litellm_ctx_hook.testing.fake_summarizer import KeywordSummarizer

from . import evaldata

WINDOW = 64_000
MODEL = "anthropic/claude-opus-4-6"
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


def requests_of(sample: evaldata.Sample) -> list[dict[str, Any]]:
    msgs = sample.messages
    cuts = sorted(c["summary_message_index"] for c in sample.extra.get("compactions", []))
    out = []
    for k, m in enumerate(msgs):
        if m["role"] != "assistant" or k == 0:
            continue
        start = max([c for c in cuts if c < k], default=0)
        out.append({"model": "claude", "max_tokens": 4096, "messages": msgs[start:k]})
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run_turns(sample: evaldata.Sample, scope: str, **overrides: Any) -> tuple[list[dict[str, Any]], int]:
    """Every request of the session through one engine (Redis-backed); each turn's outcome, its
    time, and one cold count of the same request. Returns the turns and the summariser's calls."""
    settings = load_settings(redis_url=REDIS_URL, context_speculative_condensation=False, **overrides)
    cache = SummaryCache.from_settings(settings)
    summarizer = KeywordSummarizer()
    engine = ContextEngine(settings, summarizer=summarizer, cache=cache)
    adapter = adapter_for(Format.ANTHROPIC)
    turns = []
    for body in requests_of(sample):
        started = time.perf_counter()
        out = await engine.manage(body, Format.ANTHROPIC, MODEL, limit=WINDOW, scope=scope)
        elapsed = time.perf_counter() - started
        cold_start = time.perf_counter()
        TokenCounter(settings).count(adapter.parse(body), MODEL)
        cold = time.perf_counter() - cold_start
        turns.append({"out": out, "elapsed": elapsed, "cold": cold, "body_messages": body["messages"]})
    await cache.aclose()
    return turns, summarizer.calls


async def replay(sample: evaldata.Sample, run_id: str) -> dict[str, Any] | None:
    # Pass 1: Redis as the only cache (no in-process tier: every lookup goes to L2, as on a fresh
    # replica), for the summariser calls, the L2 hit ratio and the prefix stability.
    turns, calls = await run_turns(sample, f"bench-{run_id}-l2", context_cache_size=0)
    # Pass 2: the default configuration (in-process tier and Redis), for the per-turn overhead.
    warm, _ = await run_turns(sample, f"bench-{run_id}-default")
    # Metrics per stretch of the session between Claude Code's own compactions (the client sent a
    # new, shorter history from each one on), over the turns after the first condensation in it.
    lookups = found = stable = compared = stable_all = 0
    overhead = [t["elapsed"] / t["cold"] for t in warm[1:]]
    managed = [t["elapsed"] / t["cold"] for t in warm[1:] if t["out"].risk.rank >= ContextRiskLevel.WARNING.rank]
    growth = 0.0
    first_any = None
    for stretch in stretches(sample, turns):
        actions = [t["out"].metadata.get("actions", []) for t in stretch]
        summarised = [i for i, acts in enumerate(actions) if any(kind(a) in SUMMARY_ACTIONS for a in acts)]
        if not summarised:
            continue
        first = summarised[0]
        first_any = first_any if first_any is not None else first
        for prev, cur, acts in zip(stretch[first:], stretch[first + 1 :], actions[first + 1 :], strict=False):
            growth += max(0, cur["out"].tokens_before - prev["out"].tokens_before)
            lookups += 1
            found += any(kind(a) in ("reuse", "extend") for a in acts)
            p, c = prev["out"].body["messages"], cur["out"].body["messages"]
            same = json.dumps(c[: len(p)]) == json.dumps(p)
            stable_all += same
            if any(kind(a) == "reuse" for a in acts):
                compared += 1
                stable += same
    if first_any is None:
        return None  # never needed condensing at this window (short sessions)
    same_output = sum(
        json.dumps(a["out"].body, sort_keys=True) == json.dumps(b["out"].body, sort_keys=True)
        for a, b in zip(turns, warm, strict=True)
    )
    step = (load_settings().condensation_warning_threshold - load_settings().condensation_target_ratio) * WINDOW
    return {
        "session": sample.name,
        "turns": len(turns),
        "first_condensed_turn": first_any,
        "summarizer_calls": calls,
        "allowed_calls": round(growth / step + 1, 1),
        "l2_lookups_after_first": lookups,
        "l2_hit_ratio_after_first": round(found / lookups, 4) if lookups else None,
        "prefix_stable_share_of_reuse_turns": round(stable / compared, 4) if compared else None,
        "prefix_stable_share_after_first": round(stable_all / lookups, 4) if lookups else None,
        "same_request_sent_in_both_passes": f"{same_output}/{len(turns)}",
        "overhead_ratio_p50": round(pct(overhead, 0.5), 3),
        "overhead_ratio_p99": round(pct(overhead, 0.99), 3),
        "overhead_ratio_p50_turns_at_or_above_warning": round(pct(managed, 0.5), 3) if managed else None,
    }


def stretches(sample: evaldata.Sample, turns: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Split the turns where the client's history restarted (Claude Code compacted it)."""
    out: list[list[dict[str, Any]]] = [[]]
    previous = -1
    for t in turns:
        size = len(t["body_messages"])
        if size < previous:
            out.append([])
        out[-1].append(t)
        previous = size
    return out


async def speculative_latency(sample: evaldata.Sample, run_id: str) -> dict[str, Any]:
    """The first WARNING turn (speculation on) against the same request as a SAFE turn.

    Two engines see the same turns in the same order, so their caches are equally warm: one at
    the 64k window, one at a window four times larger where every one of these turns is SAFE.
    """
    settings = load_settings(redis_url=REDIS_URL, context_speculative_condensation=True)
    cache = SummaryCache.from_settings(settings)
    engine = ContextEngine(settings, summarizer=KeywordSummarizer(delay_s=0.5), cache=cache)
    safe_engine = ContextEngine(settings, summarizer=KeywordSummarizer(), cache=None)
    safe_turns, first_warning = [], None
    for body in requests_of(sample):
        started = time.perf_counter()
        safe_out = await safe_engine.manage(body, Format.ANTHROPIC, MODEL, limit=4 * WINDOW)
        safe_elapsed = time.perf_counter() - started
        assert safe_out.risk is ContextRiskLevel.SAFE
        safe_turns.append(safe_elapsed)
        started = time.perf_counter()
        out = await engine.manage(body, Format.ANTHROPIC, MODEL, limit=WINDOW, scope=f"spec-{run_id}")
        elapsed = time.perf_counter() - started
        if out.risk.rank >= ContextRiskLevel.WARNING.rank:
            first_warning = (elapsed, safe_elapsed, out.cache, out.metadata.get("actions"))
            break
        await asyncio.sleep(0.6)  # the client's think time: lets the background summary finish
    await engine.drain()
    await cache.aclose()
    assert first_warning is not None
    return {
        "session": sample.name,
        "first_warning_turn_s": round(first_warning[0], 4),
        "first_warning_cache": first_warning[2],
        "first_warning_actions": first_warning[3],
        "same_request_as_safe_turn_s": round(first_warning[1], 4),
        "ratio_to_same_request_safe": round(first_warning[0] / first_warning[1], 2),
        "safe_turn_p50_s": round(statistics.median(safe_turns), 4),
        "ratio_to_safe_turn_p50": round(first_warning[0] / statistics.median(safe_turns), 2),
    }


async def main_async() -> dict[str, Any]:
    redis.Redis.from_url(REDIS_URL).ping()
    run_id = str(int(time.time()))
    rows = [r for s in evaldata.claude_sessions() if (r := await replay(s, run_id)) is not None]
    long = max(evaldata.claude_sessions(), key=lambda s: len(s.messages))
    return {"window": WINDOW, "sessions": rows, "speculative": await speculative_latency(long, run_id)}


def main() -> None:
    print(json.dumps(asyncio.run(main_async()), indent=2))


if __name__ == "__main__":
    main()
