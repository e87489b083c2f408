"""Replay one real agent conversation turn by turn with a real local model as the summariser.

Request k is the conversation up to its k-th assistant call (what the agent sent to get that
call). Each request goes through one :class:`ContextEngine` with a small window (6k tokens by
default: the default run, a 30-request tau-bench airline conversation growing from 1.5k to 8.6k
tokens, is then condensed several times, where clearing old tool output no longer suffices), the
default ``MAX_CONTEXT_PROCESSING_TIME`` (5 s), ``CONDENSATION_TIMEOUT=300`` (the model takes
minutes per summary on 2 cores), Redis as the summary cache when it answers (else in process),
and as summariser
``LiteLLMSummarizer("summarizer", router=litellm.Router(...))`` pointing at the local
llama.cpp server of :mod:`bench.local_model` (Qwen2.5-Coder-1.5B-Instruct, Q4_K_M).

Turns are paced as a real agent's are: after each request the benchmark waits a fixed think
time (``--think``, 20 s by default: the upstream model's own time to answer one agent turn), so a
summary the model makes in the background can land before later turns.

Reported: managed turns (at or above WARNING, or changed); of the managed turns after the first,
the share served with the model's summary (every summary of the request made by
``summarizer:...``, fresh or from the cache; ``summarizer:...+extractive``, the model's summary
extended by the extractive condenser while the model is busy, counts as mixed) against the
extractive condenser's; summariser calls
(counted by a wrapper around the summariser) against the growth bound (one per
(WARNING − target) × window of growth after the first condensation, plus one, as in
:mod:`bench.replay`); broken requests (tool pairs broken or over the window: 0 expected); per-turn
latency p50/max; and the summariser's own call times. ``engine.drain()`` is awaited at the end.

    python -m bench.local_model fetch          # once
    flock /tmp/ctx-heavy.lock python -m bench.replay_llm [--run swegym:...] [--think 20] [--every 1]

Skips (exit 0 with a message) when ../shared/evaldata is absent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from litellm_ctx_hook.adapters import adapter_for
from litellm_ctx_hook.analysis.counting import TokenCounter
from litellm_ctx_hook.analysis.risk import ContextRiskLevel
from litellm_ctx_hook.condensing.summarizer import LiteLLMSummarizer, SummaryRequest
from litellm_ctx_hook.conversation import Format
from litellm_ctx_hook.engine.engine import ContextEngine
from litellm_ctx_hook.planning.atoms import group_atoms
from litellm_ctx_hook.settings import load_settings

from . import evaldata, local_model

WINDOW = 6_000
DEFAULT_RUN = "tau:33:0:33"  # 30 requests, 1.5k -> 8.6k tokens: several condensations at a 6k window
THINK_S = 20.0
MODEL = "gpt-4o"  # the agent's model (tokenizer); the window is given explicitly
ALIAS = "summarizer"
SUMMARIZER_CTX = 16_384
CONDENSATION_TIMEOUT_S = 300.0
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


class CountingSummarizer:
    """Wraps a summariser: counts its calls and times them; everything else is the wrapped one's."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.model = inner.model
        self.calls = 0
        self.failures = 0
        self.seconds: list[float] = []
        self.reply_chars: list[int] = []

    def __getattr__(self, name: str) -> Any:  # context_window() and anything else the engine asks
        return getattr(self.inner, name)

    async def summarize(self, req: SummaryRequest, timeout: float) -> str:
        self.calls += 1
        started = time.perf_counter()
        try:
            text = str(await self.inner.summarize(req, timeout))
            self.reply_chars.append(len(text))
            return text
        except BaseException:  # errors, and the engine's timeout cancelling the call
            self.failures += 1
            raise
        finally:
            self.seconds.append(time.perf_counter() - started)


@dataclass
class Turn:
    index: int
    tokens_before: int
    tokens_after: int
    risk: str
    changed: bool
    seconds: float
    actions: list[str]
    methods: list[str]
    cache: str
    broken: list[str] = field(default_factory=list)

    @property
    def managed(self) -> bool:
        return self.changed or ContextRiskLevel(self.risk).rank >= ContextRiskLevel.WARNING.rank


def pick_run(name: str | None) -> evaldata.Sample:
    """The named run (tau-bench, swegym or Claude Code), else ``DEFAULT_RUN``."""
    for sample in evaldata.all_samples():
        if sample.name == (name or DEFAULT_RUN):
            return sample
    raise SystemExit(f"no run named {name or DEFAULT_RUN!r} in {evaldata.ROOT}")


def requests_of(sample: evaldata.Sample) -> list[dict[str, Any]]:
    """Request k: the conversation up to (without) its k-th assistant message."""
    out = []
    for k, m in enumerate(sample.messages):
        if m.get("role") == "assistant" and k > 0:
            body = {key: v for key, v in sample.body.items() if key != "messages"}
            body["messages"] = sample.messages[:k]
            out.append(body)
    return out


def broken(fmt: Format, sent: dict[str, Any], out: Any, counter: TokenCounter, model: str, limit: int) -> list[str]:
    """What is wrong with a managed request: tool pairs broken or more tokens than the window."""
    adapter = adapter_for(fmt)
    original = adapter.parse(sent)
    got = adapter.parse(dict(out.body))
    problems = []
    tokens = counter.count(got, model).total
    if tokens > limit:
        problems.append(f"{tokens} tokens > {limit}")
    atoms = group_atoms(got.messages)
    if atoms.orphan_results:
        problems.append(f"{len(atoms.orphan_results)} tool results without their call")
    extra = set(atoms.unanswered_calls) - set(group_atoms(original.messages).unanswered_calls)
    if extra:
        problems.append(f"{len(extra)} tool calls lost their results")
    return problems


def summaries_of(metadata: dict[str, Any]) -> list[dict[str, Any]]:
    found = (metadata.get("summary") or {}).get("summaries") or []
    return [s for s in found if isinstance(s, dict)]


async def replay(
    sample: evaldata.Sample, server: local_model.LocalServer, think_s: float, every: int, window: int
) -> dict[str, Any]:
    import litellm
    import redis

    from litellm_ctx_hook.cache.store import SummaryCache

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
        redis_url: str | None = REDIS_URL
    except redis.RedisError:
        redis_url = None
    settings = load_settings(
        redis_url=redis_url,
        condensation_timeout=CONDENSATION_TIMEOUT_S,
        condensation_model=ALIAS,
    )
    router = litellm.Router(  # type: ignore[attr-defined]
        model_list=[
            {
                "model_name": ALIAS,
                "litellm_params": {**server.litellm_params(), "timeout": CONDENSATION_TIMEOUT_S},
                "model_info": {"max_input_tokens": server.n_ctx},
            }
        ]
    )
    summarizer = CountingSummarizer(LiteLLMSummarizer(ALIAS, router=router))
    cache = SummaryCache.from_settings(settings) if redis_url else None
    engine = ContextEngine(settings, summarizer=summarizer, cache=cache)
    counter = TokenCounter(settings)
    fmt = Format.OPENAI if sample.format == "openai" else Format.ANTHROPIC
    scope = f"replay-llm-{int(time.time())}"
    requests = requests_of(sample)
    chosen = [k for k in range(len(requests)) if k % every == every - 1 or k == len(requests) - 1]
    turns: list[Turn] = []
    started = time.perf_counter()
    for n, k in enumerate(chosen):
        body = requests[k]
        t0 = time.perf_counter()
        out = await engine.manage(body, fmt, sample.model, limit=window, scope=scope)
        seconds = time.perf_counter() - t0
        summaries = summaries_of(out.metadata)
        turn = Turn(
            k,
            out.tokens_before,
            out.tokens_after,
            out.risk.value,
            out.changed,
            seconds,
            list(out.metadata.get("actions", [])),
            [str(s.get("method")) + (":hit" if s.get("cache") == "hit" else "") for s in summaries],
            out.cache,
            broken(fmt, body, out, counter, sample.model, window),
        )
        turns.append(turn)
        print(
            f"turn {k + 1:3d}/{len(requests)} {turn.tokens_before:6d} -> {turn.tokens_after:6d} {turn.risk:8s} "
            f"{seconds:6.2f}s {','.join(turn.actions) or '-'} {','.join(turn.methods)} "
            f"[calls {summarizer.calls}, t={time.perf_counter() - started:.0f}s]",
            file=sys.stderr,
            flush=True,
        )
        if n < len(chosen) - 1:
            await asyncio.sleep(think_s)
    drain_started = time.perf_counter()
    await engine.drain()
    drain_s = time.perf_counter() - drain_started
    if cache is not None:
        await cache.aclose()
    result = report(sample, turns, summarizer, window, settings, think_s, every, redis_url, drain_s, started)
    result["summarizer"] = f"{server.alias} (llama.cpp, Q4_K_M, n_ctx {server.n_ctx}, {server.threads} threads)"
    return result


def report(
    sample: evaldata.Sample,
    turns: list[Turn],
    summarizer: CountingSummarizer,
    window: int,
    settings: Any,
    think_s: float,
    every: int,
    redis_url: str | None,
    drain_s: float,
    started: float,
) -> dict[str, Any]:
    managed = [t for t in turns if t.managed]
    after_first = managed[1:]
    kinds: Counter[str] = Counter()
    for t in after_first:
        pure = [m.startswith("summarizer:") and "+extractive" not in m for m in t.methods]
        if not t.methods:
            kinds["no summary (cleared or truncated)"] += 1
        elif all(pure):
            kinds["llm summary"] += 1
        elif all(m.startswith("extractive") for m in t.methods):
            kinds["extractive"] += 1
        else:  # some spans the model's, some extractive, or the model's extended extractively (+extractive)
            kinds["mixed"] += 1
    methods = Counter(m for t in managed for m in t.methods)
    first_summary = next((i for i, t in enumerate(turns) if t.methods), None)
    growth = 0.0
    if first_summary is not None:
        for prev, cur in zip(turns[first_summary:], turns[first_summary + 1 :], strict=False):
            growth += max(0, cur.tokens_before - prev.tokens_before)
    step = (settings.condensation_warning_threshold - settings.condensation_target_ratio) * window
    latencies = [t.seconds for t in turns]
    managed_lat = [t.seconds for t in managed]
    return {
        "run": sample.name,
        "window": window,
        "turns_replayed": f"{len(turns)} (every {every})" if every > 1 else len(turns),
        "think_s": think_s,
        "summarizer": f"{local_model.ALIAS} (llama.cpp, Q4_K_M, n_ctx {SUMMARIZER_CTX})",
        "cache": "redis" if redis_url else "in-process",
        "max_context_processing_time_ms": settings.max_context_processing_time,
        "condensation_timeout_s": settings.condensation_timeout,
        "tokens_first_last": [turns[0].tokens_before, turns[-1].tokens_before] if turns else None,
        "managed_turns": len(managed),
        "managed_after_first": len(after_first),
        "llm_summary_share_after_first": round(kinds["llm summary"] / len(after_first), 3) if after_first else None,
        "managed_after_first_by_kind": dict(kinds),
        "summary_methods": dict(methods),
        "summarizer_calls": summarizer.calls,
        "summarizer_failures": summarizer.failures,
        "allowed_calls": round(growth / step + 1, 1) if first_summary is not None else None,
        "summarizer_call_s_mean_max": (
            [round(statistics.mean(summarizer.seconds), 1), round(max(summarizer.seconds), 1)]
            if summarizer.seconds
            else None
        ),
        "summarizer_reply_chars": summarizer.reply_chars,
        "broken_requests": sum(1 for t in turns if t.broken),
        "broken_examples": [f"turn {t.index + 1}: {'; '.join(t.broken)}" for t in turns if t.broken][:5],
        "latency_s_p50_max": [round(statistics.median(latencies), 3), round(max(latencies), 3)] if turns else None,
        "managed_latency_s_p50_max": (
            [round(statistics.median(managed_lat), 3), round(max(managed_lat), 3)] if managed_lat else None
        ),
        "drain_s": round(drain_s, 1),
        "wall_s": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.replay_llm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default=DEFAULT_RUN, help=f"a run name from bench.evaldata ({DEFAULT_RUN})")
    parser.add_argument("--think", type=float, default=THINK_S, help="seconds between turns (the agent's model)")
    parser.add_argument("--every", type=int, default=1, help="replay every N-th request only (and the last)")
    parser.add_argument("--window", type=int, default=WINDOW)
    args = parser.parse_args(argv)
    if not evaldata.available():
        print(f"skipped: {evaldata.ROOT} is absent (the real conversations are not here)")
        return 0
    sample = pick_run(args.run)
    path = local_model.fetch()
    with local_model.serve(path, ctx=SUMMARIZER_CTX) as server:
        result = asyncio.run(replay(sample, server, args.think, max(1, args.every), args.window))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
