"""The plugin's own time per request, by what it did, on long agent sessions.

Every request goes through the proxy hook (``ContextHook.async_pre_call_hook``, its worker thread
included) as a fresh JSON body, as the proxy gets it; the time is the hook's wall time, what
``litellm_ctx_processing_seconds`` measures in a proxy. Between requests the client waits for its
reply: the plugin's background work (speculative summaries) finishes then, outside the timing.
Each request is put in one class by what the plugin did:

* ``first request of the process``: loads the tokenizers (once per process, whatever it does);
* ``nothing``: analysed in full, passed unchanged (below WARNING, or nothing to condense);
* ``repeat turn``: the previous turn plus new messages, handled from the conversation's turn memo
  (passed unchanged, or its managed prefix sent again);
* ``clearing``: old tool output cleared;
* ``condensation from cache``: the summaries an earlier turn made, found in the cache;
* ``fresh condensation``: summaries made for this request (the local extractive condenser: no
  summariser model is configured, as for a new user);
* ``truncation``: anything that dropped or cut messages.

Sessions: generated Claude Code-like ``/v1/messages`` sessions (a system prompt and tool
definitions marked for the prompt cache, then ``--outputs`` tool calls each reading ~5k tokens of
file content, the client's cache marker on the last block of each request) at a 128k window; and
the real Claude Code sessions of ``../shared/evaldata`` (``CTX_EVALDATA``; skipped when absent) as
``bench.replay`` replays them, at its 64k window (at 128k most of them never need managing). The
model name is unknown to LiteLLM, so the window is ``REAL_TEXT_MODEL_TOKENS``; its name gives it
Claude's count. Also the memory each conversation's turn memo holds after its last request, next
to what a copy of that request's messages, system prompt and tools (what the memo held before it kept
digests) would hold.

With ``--proxy``, the generated sessions also go through a real ``litellm --config`` proxy in front
of the fake upstream (``anthropic/...`` deployment, ``max_input_tokens`` 128,000), one request at a
time, after a warm-up request: each response's ``x-ctx-processing-ms`` header is the time the
plugin took (the value ``litellm_ctx_processing_seconds`` observes, read back from ``/metrics`` too), classed by the
response's ``x-ctx-strategy`` and ``x-ctx-cache`` headers (which do not tell a repeat turn from a
full analysis). The fake upstream answers at once: ``--think`` waits that long after each reply,
as a real model's reply time would (the plugin's background work runs meanwhile).

    python -m bench.turn_cost [--sessions 5] [--outputs 40] [--no-real] [--proxy [--think 1]]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import statistics
import time
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from litellm_ctx_hook.engine.turns import deep_size
from litellm_ctx_hook.planning.actions import EMERGENCY
from litellm_ctx_hook.planning.actions import kind as action_kind
from litellm_ctx_hook.proxy.hook import ContextHook
from litellm_ctx_hook.settings import load_settings

from . import evaldata
from .replay import requests_of as replayed_requests

MODEL = "claude-code-agent"  # unknown to LiteLLM: the window is REAL_TEXT_MODEL_TOKENS, Claude's count
GENERATED_WINDOW = 128_000
REAL_WINDOW = 64_000  # as bench.replay
KINDS = (
    "first request of the process",
    "nothing",
    "repeat turn",
    "clearing",
    "condensation from cache",
    "fresh condensation",
    "truncation",
)
WORDS = [
    "invoice",
    "total",
    "refund",
    "amount",
    "currency",
    "rate",
    "decimal",
    "quantize",
    "rounding",
    "ledger",
    "account",
    "balance",
    "line",
    "item",
    "tax",
    "discount",
    "audit",
    "event",
    "record",
    "session",
    "user",
    "token",
    "request",
    "response",
    "handler",
    "route",
    "schema",
    "model",
    "field",
    "value",
    "error",
    "retry",
    "timeout",
    "cache",
    "key",
    "store",
    "queue",
    "worker",
    "job",
    "task",
]
MARK = {"type": "ephemeral"}


# -- sessions --------------------------------------------------------------------------------------
def _file(rng: random.Random, k: int, tokens: int) -> str:
    """A source file of about ``tokens`` tokens (~2.4 characters a token for this code, Claude's count)."""
    lines = [f"# src/billing/module_{k}.py"]
    size = 0
    while size < tokens * 2.4:
        a, b, c, d = rng.sample(WORDS, 4)
        line = f"    {a}_{rng.randint(0, 999)} = {b}.{c}({d}, {rng.randint(0, 10**6)})  # L{len(lines)}"
        lines.append(line)
        size += len(line) + 1
    return "\n".join(lines)


def claude_code_session(outputs: int = 40, seed: int = 0, tokens: int = 5000) -> dict[str, Any]:
    """A Claude Code-like ``/v1/messages`` body: ``outputs`` tool calls, each reading a file of
    ~``tokens`` tokens, then a final answer."""
    rng = random.Random(seed)
    system = [
        {"type": "text", "text": "You are Claude Code, a coding agent working in a repository through tools."},
        {"type": "text", "text": " ".join(rng.choice(WORDS) for _ in range(3000)), "cache_control": MARK},
    ]
    tools = [
        {
            "name": name,
            "description": " ".join(rng.choice(WORDS) for _ in range(120)),
            "input_schema": {
                "type": "object",
                "properties": {"command": {"type": "string", "description": "What to run or read."}},
                "required": ["command"],
            },
        }
        for name in ("Bash", "Read", "Edit", "Write", "Grep", "Glob", "TodoWrite", "WebFetch")
    ]
    task = f"[session {seed}] The billing tests fail since 4f9c2e1 (BILL-2291): find the cause and fix it."
    messages: list[dict[str, Any]] = [{"role": "user", "content": [{"type": "text", "text": task}]}]
    for k in range(outputs):
        call = f"toolu_{seed:02d}{k:03d}{rng.randrange(16**8):08x}"
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": f"Step {k + 1}: reading module_{k} for the rounding of line totals."},
                    {"type": "tool_use", "id": call, "name": "Read", "input": {"command": f"module_{k}.py"}},
                ],
            }
        )
        messages.append(
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": call, "content": _file(rng, k, tokens)}],
            }
        )
    messages.append({"role": "assistant", "content": [{"type": "text", "text": "Fixed: ROUND_HALF_EVEN per invoice."}]})
    return {"model": MODEL, "max_tokens": 8192, "system": system, "tools": tools, "messages": messages}


def requests_of(body: dict[str, Any]) -> list[str]:
    """The request the client sends before each assistant message, as JSON, with the client's cache
    marker on its last block (so it moves every turn, as Claude Code's does)."""
    out = []
    messages = body["messages"]
    for k, m in enumerate(messages):
        if m["role"] != "assistant" or k == 0:
            continue
        sent = list(messages[:k])
        last = sent[-1]
        blocks = last["content"] if isinstance(last["content"], list) else [{"type": "text", "text": last["content"]}]
        if blocks and isinstance(blocks[-1], dict):
            blocks = [*blocks[:-1], {**blocks[-1], "cache_control": MARK}]
        sent[-1] = {**last, "content": blocks}
        out.append(json.dumps({**body, "model": MODEL, "messages": sent}))
    return out


def real_sessions() -> list[tuple[str, list[str]]]:
    """The real Claude Code sessions, request by request as ``bench.replay`` replays them."""
    if not evaldata.CLAUDE.exists():
        return []
    out = []
    for sample in evaldata.claude_sessions():
        bodies = [json.dumps({**sample.body, **r, "model": MODEL}) for r in replayed_requests(sample)]
        out.append((sample.name, bodies))
    return out


# -- running -----------------------------------------------------------------------------------------
class _Key:
    team_id = None
    api_key = "sk-bench"


@dataclass(frozen=True)
class Served:
    kind: str
    seconds: float
    tokens: int


def kind_of(report: dict[str, Any], from_memo: bool) -> str:
    actions = [action_kind(str(a)) for a in report.get("actions", [])]
    if from_memo:
        return "repeat turn"
    if not actions:
        return "nothing"
    if EMERGENCY & set(actions):
        return "truncation"
    if {"condense", "extend"} & set(actions):
        return "fresh condensation" if report.get("cache") != "hit" else "condensation from cache"
    if "reuse" in actions:
        return "condensation from cache"
    return "clearing" if "clear" in actions else "nothing"


@dataclass(frozen=True)
class SessionRun:
    name: str
    window: int
    served: list[Served]
    memo_bytes: int  # what the conversation's turn memo holds after its last request
    copy_bytes: int  # what a copy of that request's messages, system prompt and tools holds


_started = False  # the process has served its first request


async def run_session(name: str, requests: list[str], window: int, **overrides: Any) -> SessionRun:
    """Every request of one session through a hook of its own (``overrides``: settings)."""
    global _started
    hook = ContextHook(load_settings(real_text_model_tokens=window, **overrides))
    served = []
    try:
        for raw in requests:
            data = json.loads(raw)
            data["litellm_metadata"] = {}
            hits = hook.engine.stats.turn_memo_hits
            gc.collect()  # a collection the benchmark's own parsing made due is not the plugin's
            started = time.perf_counter()
            out = await hook.async_pre_call_hook(_Key(), None, data, "anthropic_messages")
            seconds = time.perf_counter() - started
            report = out["litellm_metadata"]["ctx_hook"]
            kind = kind_of(report, hook.engine.stats.turn_memo_hits > hits) if _started else KINDS[0]
            _started = True
            served.append(Served(kind, seconds, int(report["tokens_before"])))
            await hook.engine.drain()  # the client waits for its reply: background work finishes
        held = hook.engine.turn_memo.held()  # the conversation's last turn is the latest entry
        last = json.loads(requests[-1])
        copied = deep_size([last["messages"], last.get("system"), last.get("tools")])
        return SessionRun(name, window, served, list(held.values())[-1] if held else 0, copied)
    finally:
        hook.offloop.close()


# -- reporting ---------------------------------------------------------------------------------------
def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(runs: list[SessionRun]) -> dict[str, dict[str, float]]:
    out = {}
    for kind in KINDS:
        ms = [s.seconds * 1000 for run in runs for s in run.served if s.kind == kind]
        if ms:
            out[kind] = times(ms)
    out["all requests"] = times([s.seconds * 1000 for run in runs for s in run.served])
    return out


def times(ms: list[float]) -> dict[str, float]:
    """Requests, mean, p50, p99 and max of some requests' times in milliseconds."""
    return {
        "requests": len(ms),
        "mean_ms": round(statistics.fmean(ms), 2),
        "p50_ms": round(pct(ms, 0.5), 2),
        "p99_ms": round(pct(ms, 0.99), 2),
        "max_ms": round(max(ms), 2),
    }


def table(title: str, runs: list[SessionRun]) -> str:
    rows = summary(runs)
    lines = [
        f"\n{title}",
        "",
        "| what the plugin did | requests | mean | p50 | p99 | max |",
        "|---|---|---|---|---|---|",
    ]
    for kind, row in rows.items():
        lines.append(
            f"| {kind} | {row['requests']} | {row['mean_ms']} ms | {row['p50_ms']} ms "
            f"| {row['p99_ms']} ms | {row['max_ms']} ms |"
        )
    memo = [run.memo_bytes for run in runs]
    copies = [run.copy_bytes for run in runs]
    tokens = [run.served[-1].tokens for run in runs]
    lines.append(
        f"\nTurn memo per conversation after its last request: median {statistics.median(memo) / 1024:.1f} KiB, "
        f"max {max(memo) / 1024:.1f} KiB (the last request: median {statistics.median(tokens):,.0f} tokens; "
        "a copy of its messages, system prompt and tools, as the memo held before: "
        f"median {statistics.median(copies) / 1024:.1f} KiB, max {max(copies) / 1024:.1f} KiB)"
    )
    return "\n".join(lines)


# -- through a real proxy ------------------------------------------------------------------------------
PROXY_KINDS = ("passed unchanged", "managed, prefix from the cache", "managed, summaries made now", "other")


def proxy_kind(headers: Any) -> str:
    strategy, cache = headers.get("x-ctx-strategy"), headers.get("x-ctx-cache")
    if strategy == "MONITOR_ONLY":
        return PROXY_KINDS[0]
    if cache == "hit" or (cache == "none" and strategy == "CONDENSATION_LIGHT"):
        return PROXY_KINDS[1]
    if cache == "miss":
        return PROXY_KINDS[2]
    return PROXY_KINDS[3]


def processing(metrics: str) -> tuple[float, float]:
    """``litellm_ctx_processing_seconds``: its sum and count, all series added up."""
    total = count = 0.0
    for line in metrics.splitlines():
        if line.startswith("litellm_ctx_processing_seconds_sum"):
            total += float(line.split()[-1])
        elif line.startswith("litellm_ctx_processing_seconds_count"):
            count += float(line.split()[-1])
    return total, count


def through_proxy(sessions: list[list[str]], think_s: float = 0.0) -> dict[str, Any]:
    """The generated sessions through a real proxy; the plugin's time per request from its header."""
    import httpx

    from litellm_ctx_hook.testing.fake_upstream import FakeUpstream
    from litellm_ctx_hook.testing.proxy import model_entry, start_proxy

    with FakeUpstream() as upstream:
        model = model_entry(
            MODEL, "anthropic/claude-sonnet-4-5", upstream.url, model_info={"max_input_tokens": GENERATED_WINDOW}
        )
        callbacks = ["litellm_ctx_hook.proxy_handler_instance", "prometheus"]  # prometheus: LiteLLM's /metrics
        config = {"model_list": [model], "litellm_settings": {"callbacks": callbacks}}
        with start_proxy(config) as proxy, httpx.Client(base_url=proxy.base_url, timeout=120) as client:
            headers = {**proxy.auth_headers, "content-type": "application/json", "anthropic-version": "2023-06-01"}
            warm = {"model": MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": "warm-up " * 300}]}
            client.post("/v1/messages", json=warm, headers=headers).raise_for_status()  # loads the tokenizers
            before = processing(client.get("/metrics/", headers=proxy.auth_headers).text)
            rows: list[tuple[str, float]] = []
            for requests in sessions:
                for raw in requests:
                    resp = client.post("/v1/messages", content=raw, headers=headers)
                    resp.raise_for_status()
                    rows.append((proxy_kind(resp.headers), float(resp.headers["x-ctx-processing-ms"])))
                    time.sleep(think_s)  # the rest of a real model's reply time (the fake upstream answers at once)
            after = processing(client.get("/metrics/", headers=proxy.auth_headers).text)
    total, count = after[0] - before[0], after[1] - before[1]
    out: dict[str, Any] = {}
    for kind in (*PROXY_KINDS, "all requests"):
        ms = [t for k, t in rows if k == kind or kind == "all requests"]
        if ms:
            out[kind] = times(ms)
    out["metric_mean_ms"] = round(1000 * total / count, 2) if count else None
    out["metric_requests"] = int(count)
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    generated = [
        await run_session(
            f"generated-{seed}",
            requests_of(claude_code_session(args.outputs, seed, args.tokens)),
            GENERATED_WINDOW,
        )
        for seed in range(args.sessions)
    ]
    print(
        table(
            f"Generated Claude Code-like sessions ({args.sessions} x {args.outputs} tool outputs of "
            f"~{args.tokens} tokens), 128k window",
            generated,
        ),
        flush=True,
    )
    result: dict[str, Any] = {"generated": summary(generated)}
    real = [] if args.no_real else real_sessions()
    if real:
        runs = [await run_session(name, requests, REAL_WINDOW) for name, requests in real]
        print(
            table(
                f"Real Claude Code sessions ({len(runs)}, {sum(len(r.served) for r in runs)} requests), 64k window",
                runs,
            ),
            flush=True,
        )
        result["real"] = summary(runs)
    elif not args.no_real:
        print("\n(real sessions skipped: ../shared/evaldata not found; set CTX_EVALDATA)")
    if args.proxy:
        sessions = [
            requests_of(claude_code_session(args.outputs, 100 + seed, args.tokens)) for seed in range(args.sessions)
        ]
        result["proxy"] = await asyncio.to_thread(through_proxy, sessions, args.think)
        lines = [
            f"\nThrough a real proxy (x-ctx-processing-ms), {args.think} s between requests",
            "",
            "| by its headers | requests | mean | p50 | p99 | max |",
        ]
        lines.append("|---|---|---|---|---|---|")
        for kind, row in result["proxy"].items():
            if isinstance(row, dict):
                lines.append(
                    f"| {kind} | {row['requests']} | {row['mean_ms']} ms | {row['p50_ms']} ms "
                    f"| {row['p99_ms']} ms | {row['max_ms']} ms |"
                )
        lines.append(
            f"\nlitellm_ctx_processing_seconds: mean {result['proxy']['metric_mean_ms']} ms over "
            f"{result['proxy']['metric_requests']} requests"
        )
        print("\n".join(lines), flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=5, help="generated sessions (seeds)")
    parser.add_argument("--outputs", type=int, default=40, help="tool outputs per generated session")
    parser.add_argument("--tokens", type=int, default=5000, help="tokens per tool output")
    parser.add_argument("--no-real", action="store_true", help="skip the real sessions")
    parser.add_argument("--proxy", action="store_true", help="also the generated sessions through a real proxy")
    parser.add_argument(
        "--think", type=float, default=0.0, help="--proxy: seconds between a reply and the next request"
    )
    args = parser.parse_args()
    print("\n" + json.dumps(asyncio.run(main_async(args)), indent=2))


if __name__ == "__main__":
    main()
