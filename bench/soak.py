"""Bounded memory: tens of thousands of distinct conversations through a real proxy.

A ``litellm --config`` proxy with the plugin (and, with ``--baseline``, one without it getting the
same traffic at the same time; both with the probe of ``bench/loop_probe.py``) in front of a fake
upstream. Every request is a new conversation (chat completions and ``/v1/messages``, some with
tool calls, every message text distinct so every count is new); one in ``OVER_SHARE`` is for a
model with a small window, so it is condensed (a new summary each time). After ``WARMUP``
conversations (the plugin's caches are full by then) RSS is read every ``CHECK_EVERY``
conversations, with the number of entries of every structure of the plugin that could grow with
traffic.

The bound checked: after warm-up the plugin's proxy grows by no more than what its caches could
still add had they been empty at warm-up, ``CONTEXT_CACHE_SIZE × 3 × 4B`` (turns, analyses and
summaries of at most ``CONTEXT_CACHE_SIZE`` conversations of ``B`` JSON bytes, ×4 in memory) plus
``TIKTOKEN_CACHE_SIZE × 2 × E`` (per-message counts and atom digests, ``E`` = 400 bytes each;
150 measured for a count), plus LiteLLM's own growth (0 unless ``--baseline``) and 8 MiB of
allocator noise; and every structure stays within its own bound.

    python -m bench.soak [--conversations 24000] [--baseline]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from contextlib import ExitStack
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import httpx

from bench.loop_lag import PLUGIN, PROBE, Upstream
from litellm_ctx_hook.testing.proxy import ProxyProcess, model_entry, start_proxy

WARMUP = 4000
CHECK_EVERY = 2000
CLIENTS = 12
OVER_SHARE = 20  # one conversation in 20 is over its model's window
CONTEXT_CACHE_SIZE = 100
TIKTOKEN_CACHE_SIZE = 20_000
ENTRY_BYTES = 400  # a count or digest entry: key tuple, ints, OrderedDict node (measured ~250)
NOISE_MIB = 8.0
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "error",
    "path",
    "config",
    "deploy",
    "build",
    "retry",
    "ticket",
    "cache",
    "token",
    "value",
]


def config(upstream: str, plugin: bool) -> dict[str, Any]:
    models = [
        model_entry("gpt-4o", "openai/gpt-4o", upstream),
        model_entry("small", "openai/gpt-4o", upstream, model_info={"max_input_tokens": 3000}),
        model_entry("claude", "anthropic/claude-sonnet-4-5-20250929", upstream),
    ]
    return {
        "model_list": models,
        "litellm_settings": {"callbacks": ["loop_probe.probe", *([PLUGIN] if plugin else [])]},
    }


def text(rng: random.Random, n: int, words: int) -> str:
    return f"#{n} " + " ".join(f"{rng.choice(WORDS)}{rng.randint(0, 99999)}" for _ in range(words))


def conversation(n: int) -> tuple[str, dict[str, Any]]:
    """The ``n``-th conversation: route and body (distinct text everywhere)."""
    rng = random.Random(n)
    over = n % OVER_SHARE == 0
    turns = 40 if over else rng.randint(2, 6)
    if n % 3 == 1:  # Anthropic messages with a tool call
        msgs: list[dict[str, Any]] = [{"role": "user", "content": text(rng, n, 30)}]
        for t in range(turns):
            tid = f"toolu_{n}_{t}"
            msgs.append(
                {"role": "assistant", "content": [{"type": "tool_use", "id": tid, "name": "read", "input": {}}]}
            )
            msgs.append(
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tid, "content": text(rng, n, 40)}]}
            )
        msgs.append({"role": "user", "content": text(rng, n, 10)})
        return "/v1/messages", {"model": "small" if over else "claude", "max_tokens": 64, "messages": msgs}
    msgs = [{"role": "system", "content": "You are a helpful assistant."}]
    for _ in range(turns):
        msgs.append({"role": "user", "content": text(rng, n, 30)})
        msgs.append({"role": "assistant", "content": text(rng, n, 30)})
    msgs.append({"role": "user", "content": text(rng, n, 10)})
    return "/v1/chat/completions", {"model": "small" if over else "gpt-4o", "max_tokens": 64, "messages": msgs}


async def drive(proxies: dict[str, ProxyProcess], total: int, checkpoint: Any, every: int) -> dict[str, int]:
    failures = dict.fromkeys(proxies, 0)
    clients = {
        name: httpx.AsyncClient(base_url=p.base_url, headers=p.auth_headers, timeout=120) for name, p in proxies.items()
    }
    queue: asyncio.Queue[int] = asyncio.Queue()
    done = 0

    async def worker() -> None:
        nonlocal done
        while True:
            n = await queue.get()
            route, body = conversation(n)
            results = await asyncio.gather(*(c.post(route, json=body) for c in clients.values()))
            for name, resp in zip(clients, results, strict=True):
                if resp.status_code != 200:
                    failures[name] += 1
            done += 1
            if done % every == 0:
                await checkpoint(done, clients)
            queue.task_done()

    for n in range(total):
        queue.put_nowait(n)
    workers = [asyncio.create_task(worker()) for _ in range(CLIENTS)]
    await queue.join()
    for w in workers:
        w.cancel()
    for c in clients.values():
        await c.aclose()
    return failures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--conversations", type=int, default=20_000 + WARMUP)
    parser.add_argument("--warmup", type=int, default=WARMUP)
    parser.add_argument("--check-every", type=int, default=CHECK_EVERY)
    parser.add_argument(
        "--baseline", action="store_true", help="also a proxy without the plugin (LiteLLM's own growth)"
    )
    args = parser.parse_args()
    env = {"CONTEXT_CACHE_SIZE": str(CONTEXT_CACHE_SIZE), "TIKTOKEN_CACHE_SIZE": str(TIKTOKEN_CACHE_SIZE)}
    upstream = Upstream()
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    try:
        with ExitStack() as stack:
            proxies = {
                name: stack.enter_context(
                    start_proxy(config(upstream.url, plugin), env, files={"loop_probe.py": PROBE})
                )
                for name, plugin in (("with", True), *((("without", False),) if args.baseline else ()))
            }

            async def checkpoint(done: int, clients: dict[str, httpx.AsyncClient]) -> None:
                reports = {name: (await c.get("/loop-probe")).json() for name, c in clients.items()}
                row = {
                    "conversations": done,
                    "seconds": round(time.monotonic() - started),
                    "rss_mib_without": round(reports["without"]["rss_kib"] / 1024, 1) if "without" in reports else None,
                    "rss_mib_with": round(reports["with"]["rss_kib"] / 1024, 1),
                    "sizes": reports["with"]["plugin"]["sizes"],
                }
                rows.append(row)
                print(json.dumps(row), flush=True)

            failures = asyncio.run(drive(proxies, args.conversations, checkpoint, args.check_every))
    finally:
        upstream.stop()
    print(verdict(rows, failures, args.warmup))


def verdict(rows: list[dict[str, Any]], failures: dict[str, int], warmup: int) -> str:
    base = next(r for r in rows if r["conversations"] >= warmup)
    after = [r for r in rows if r["conversations"] >= warmup]
    last = after[-1]
    grow_with = max(r["rss_mib_with"] for r in after) - base["rss_mib_with"]
    baseline = base["rss_mib_without"] is not None
    grow_without = max(r["rss_mib_without"] for r in after) - base["rss_mib_without"] if baseline else 0.0
    largest_body = max(len(json.dumps(conversation(n)[1])) for n in range(0, 400))
    cache_mib = (CONTEXT_CACHE_SIZE * 3 * largest_body * 4 + TIKTOKEN_CACHE_SIZE * 2 * ENTRY_BYTES) / 2**20
    bound = grow_without + cache_mib + NOISE_MIB
    limits = {
        "token_counts": TIKTOKEN_CACHE_SIZE,
        "analyses": CONTEXT_CACHE_SIZE,
        "turns": CONTEXT_CACHE_SIZE,
        "summaries_local": CONTEXT_CACHE_SIZE,
        "atom_digests": max(1000, TIKTOKEN_CACHE_SIZE),
        "model_targets": 256,
        "unknown_models": 1000,
        "background_summaries": 6,
        "speculating": 3,
    }
    peaks = {k: max(r["sizes"].get(k, 0) for r in rows) for k in limits}
    over = {k: v for k, v in peaks.items() if v > limits[k]}
    lines = [
        "| conversations | seconds | RSS without the plugin (MiB) | RSS with the plugin (MiB) | turns | analyses "
        "| token counts | atom digests | summaries |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        s = r["sizes"]
        lines.append(
            f"| {r['conversations']} | {r['seconds']} | {r['rss_mib_without']} | {r['rss_mib_with']} | {s['turns']} "
            f"| {s['analyses']} | {s['token_counts']} | {s['atom_digests']} | {s['summaries_local']} |"
        )
    lines += [
        "",
        f"failures (non-200): {failures}; conversations after warm-up: {last['conversations'] - base['conversations']}",
        f"growth after warm-up: without {grow_without:.1f} MiB, with {grow_with:.1f} MiB; bound {bound:.1f} MiB "
        f"(= {grow_without:.1f} + caches {cache_mib:.1f} [largest body {largest_body} B × 4 in memory] + {NOISE_MIB})"
        f" → {'within' if grow_with <= bound else 'EXCEEDED'}",
        f"structure peaks {peaks}; over their bounds: {over or 'none'}",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
