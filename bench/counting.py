"""Counting accuracy and speed, side by side with ``litellm.token_counter`` (issue: foundation).

Accuracy: for consecutive assistant calls a < b in the real Claude sessions and Gemini runs,
``count(messages[:b]) - count(messages[:a])`` against the provider's real context difference
(see bench/calibrate_counts.py). OpenAI: agreement with the documented chat formula on the
text-only messages of the tau-bench runs. Speed, measured in one run as ratios: cold counting
throughput of the largest Claude session vs raw tiktoken ``encode`` of the same text; warm
re-analysis after appending one message vs ``litellm.token_counter`` on the same conversation.
Warm re-count at 100, 250 and 1,000 messages (the largest Claude session's messages, repeated
past its end): a request that is the previous one plus a new message, as a fresh JSON body (as the
proxy gets it), counted the way the plugin counts a repeat turn (the conversation's turn memo:
digest the messages, count only the new one) and by re-parsing it with every message's count
cached, against ``litellm.token_counter`` on the same messages.

    python -m bench.counting [--speed]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import itertools

import litellm
import numpy as np
import tiktoken

from litellm_ctx_hook.adapters import adapter_for
from litellm_ctx_hook.analysis.counting import TokenCounter
from litellm_ctx_hook.conversation import Format
from litellm_ctx_hook.engine.turns import TurnMemo, memo_key
from litellm_ctx_hook.settings import ensure_offline_tokenizers, load_settings

from . import evaldata
from .calibrate_counts import context_tokens


def step_errors(
    samples: Sequence[evaldata.Sample],
    truth: Callable[[dict[str, Any]], int],
    count: Callable[[evaldata.Sample, int], int],
) -> dict[str, float]:
    """Per-step and aggregate error of a counter against the real context differences."""
    rel, est_sum, true_sum = [], 0.0, 0.0
    for s in samples:
        msgs = s.messages
        cuts = {c["summary_message_index"] for c in s.extra.get("compactions", [])}
        calls = [i for i, m in enumerate(msgs) if m["role"] == "assistant" and "usage" in m]
        prefix = {i: count(s, i) for i in calls}
        for a, b in itertools.pairwise(calls):
            if any(a < c <= b for c in cuts):
                continue
            real = truth(msgs[b]) - truth(msgs[a])
            if real <= 0:
                continue
            est = prefix[b] - prefix[a]
            rel.append(abs(est - real) / real)
            est_sum += est
            true_sum += real
    return {
        "steps": len(rel),
        "aggregate_error": round((est_sum - true_sum) / true_sum, 4),
        "p50_abs_error": round(float(np.percentile(rel, 50)), 4),
        "p90_abs_error": round(float(np.percentile(rel, 90)), 4),
    }


def ours(model: str) -> Callable[[evaldata.Sample, int], int]:
    counter = TokenCounter(load_settings())

    def count(s: evaldata.Sample, end: int) -> int:
        body = {**s.body, "messages": s.messages[:end]}
        return counter.count(adapter_for(s.format).parse(body), model).total

    return count


def litellms(model: str) -> Callable[[evaldata.Sample, int], int]:
    def count(s: evaldata.Sample, end: int) -> int:
        return int(litellm.token_counter(model=model, messages=s.messages[:end]))

    return count


def accuracy() -> dict[str, Any]:
    claude = list(evaldata.claude_sessions())
    gemini = list(evaldata.gemini_runs())
    claude_model, gemini_model = "anthropic/claude-opus-4-6", "gemini/gemini-3-pro-preview"
    return {
        "claude": {
            "ours": step_errors(claude, context_tokens, ours(claude_model)),
            "litellm.token_counter": step_errors(claude, context_tokens, litellms(claude_model)),
        },
        "gemini": {
            "ours": step_errors(gemini, lambda m: int(m["usage"]["prompt_tokens"]), ours(gemini_model)),
            "litellm.token_counter": step_errors(
                gemini, lambda m: int(m["usage"]["prompt_tokens"]), litellms(gemini_model)
            ),
        },
        "openai_text_chat": openai_agreement(),
    }


def openai_agreement() -> dict[str, Any]:
    """Text-only messages of every tau-bench run, counted for gpt-4o, against the cookbook formula."""
    enc = tiktoken.get_encoding("o200k_base")
    counter = TokenCounter(load_settings())
    total = ours_equal = litellm_equal = 0
    for s in evaldata.tau_runs():
        msgs = [
            {"role": m["role"], "content": m["content"]}
            for m in s.messages
            if isinstance(m.get("content"), str) and m["role"] in ("system", "user", "assistant")
        ]
        formula = sum(3 + len(enc.encode(m["role"])) + len(enc.encode(m["content"])) for m in msgs) + 3
        total += 1
        ours_equal += counter.count(adapter_for("openai").parse({"messages": msgs}), "gpt-4o").total == formula
        litellm_equal += litellm.token_counter(model="gpt-4o", messages=msgs) == formula
    return {"conversations": total, "ours_exact": ours_equal, "litellm_exact": litellm_equal}


def best_of(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def speed() -> dict[str, Any]:
    ensure_offline_tokenizers()  # tiktoken reads the BPE files LiteLLM ships (no network)
    largest = max(evaldata.claude_sessions(), key=lambda s: len(json.dumps(s.messages)))
    adapter = adapter_for(Format.ANTHROPIC)
    texts = [p.text for m in adapter.parse(largest.body).messages for p in m.parts]
    joined = "\n".join(texts)
    enc = tiktoken.get_encoding("o200k_base")
    enc.encode(joined)  # warm the encoder

    def cold() -> None:
        TokenCounter(load_settings()).count(adapter.parse(largest.body), "anthropic/claude-opus-4-6")

    raw = best_of(lambda: enc.encode(joined), 5)
    ours_cold = best_of(cold, 5)

    warm_counter = TokenCounter(load_settings(tiktoken_cache_size=10_000))
    warm_counter.count(adapter.parse(largest.body), "anthropic/claude-opus-4-6")
    grown = {**largest.body, "messages": [*largest.messages, {"role": "user", "content": "One more question."}]}
    ours_warm = best_of(lambda: warm_counter.count(adapter.parse(grown), "anthropic/claude-opus-4-6"), 5)
    theirs = best_of(lambda: litellm.token_counter(model="anthropic/claude-opus-4-6", messages=grown["messages"]), 5)
    tokens = len(enc.encode(joined))
    return {
        "session": largest.name,
        "messages": len(largest.messages),
        "o200k_tokens": tokens,
        "raw_tiktoken_encode_s": round(raw, 4),
        "ours_cold_count_s": round(ours_cold, 4),
        "cold_throughput_ratio_vs_tiktoken": round(raw / ours_cold, 3),
        "ours_warm_recount_after_append_s": round(ours_warm, 5),
        "litellm_token_counter_s": round(theirs, 4),
        "warm_speedup_vs_litellm": round(theirs / ours_warm, 1),
    }


SIZES = (100, 250, 1000)
CLAUDE_MODEL = "anthropic/claude-opus-4-6"


def warm_recount(size: int, repeat: int = 9) -> dict[str, Any]:
    """A repeat turn's count at ``size`` messages (see the module doc), best and median of ``repeat``."""
    largest = max(evaldata.claude_sessions(), key=lambda s: len(json.dumps(s.messages)))
    messages = (largest.messages * (size // len(largest.messages) + 1))[:size]
    body = {**largest.body, "messages": messages}
    adapter = adapter_for(Format.ANTHROPIC)
    counter = TokenCounter(load_settings(tiktoken_cache_size=20_000))
    memo = TurnMemo(10, 3600.0)
    conv = adapter.parse(body)
    key = memo_key(Format.ANTHROPIC, messages, CLAUDE_MODEL)
    assert key is not None
    memo.remember(key, conv, Format.ANTHROPIC, counter.count(conv, CLAUDE_MODEL).messages)
    raw = json.dumps({**body, "messages": [*messages, {"role": "user", "content": "One more question."}]})

    def timed(fn: Callable[[dict[str, Any]], int]) -> tuple[list[float], int]:
        times, total = [], 0
        for _ in range(repeat):
            grown = json.loads(raw)  # a fresh body, as the proxy parses it
            gc.collect()  # a collection its parsing made due is not the count's
            started = time.perf_counter()
            total = fn(grown)
            times.append(time.perf_counter() - started)
        return times, total

    def by_memo(grown: dict[str, Any]) -> int:
        found = memo_key(Format.ANTHROPIC, grown["messages"], CLAUDE_MODEL)
        recalled = memo.recall(found, grown, Format.ANTHROPIC, CLAUDE_MODEL, counter) if found else None
        assert recalled is not None
        return recalled.count.total

    memo_s, memo_total = timed(by_memo)
    parse_s, parse_total = timed(lambda grown: counter.count(adapter.parse(grown), CLAUDE_MODEL).total)
    assert memo_total == parse_total
    theirs_s, _ = timed(lambda grown: int(litellm.token_counter(model=CLAUDE_MODEL, messages=grown["messages"])))
    return {
        "messages": size + 1,
        "request_kib": len(raw) // 1024,
        "memo_recount_ms": {"best": round(min(memo_s) * 1000, 3), "median": round(statistics.median(memo_s) * 1000, 3)},
        "reparse_recount_ms": {
            "best": round(min(parse_s) * 1000, 3),
            "median": round(statistics.median(parse_s) * 1000, 3),
        },
        "litellm_token_counter_ms": {
            "best": round(min(theirs_s) * 1000, 2),
            "median": round(statistics.median(theirs_s) * 1000, 2),
        },
        "memo_speedup_vs_litellm": round(statistics.median(theirs_s) / statistics.median(memo_s), 1),
        "reparse_speedup_vs_litellm": round(statistics.median(theirs_s) / statistics.median(parse_s), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--speed", action="store_true", help="speed only (the accuracy part takes minutes)")
    args = parser.parse_args()
    result: dict[str, Any] = {} if args.speed else {"accuracy": accuracy()}
    result["speed"] = speed()
    result["warm_recount"] = [warm_recount(n) for n in SIZES]
    print(json.dumps(result, indent=2))
    print("\n| messages | request | repeat turn (memo) | re-parse, counts cached | litellm.token_counter | speed-up |")
    print("|---|---|---|---|---|---|")
    for row in result["warm_recount"]:
        print(
            f"| {row['messages']} | {row['request_kib']} KiB | {row['memo_recount_ms']['median']} ms "
            f"| {row['reparse_recount_ms']['median']} ms | {row['litellm_token_counter_ms']['median']} ms "
            f"| **{row['memo_speedup_vs_litellm']}x** |"
        )


if __name__ == "__main__":
    main()
