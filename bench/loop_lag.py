"""Head-of-line blocking: the proxy's event-loop lag and small-request latency under a load of
distinct over-limit conversations, with the plugin and without it, side by side in one run.

Two ``litellm --config`` proxies in front of one fake upstream (its own process), identical but for
the plugin; both load the event-loop lag probe (``bench/loop_probe.py``). Each run drives one proxy,
then the other (the order alternates), for ``SEGMENT_S`` seconds with the same open-loop traffic:
``HEAVY_RPS`` agent conversations per second, each a new conversation (14k-36k tokens for a model
whose window is 24k: WARNING to OVERFLOW, so the plugin condenses every one), and ``SMALL_RPS`` tiny
requests per second, whose latency is what a busy proxy's other users see. Per segment: the loop's
lag (p50/p99/max, from the probe inside the proxy), small-request p50/p99, and for the plugin the
longest of its synchronous sections on the proxy's loop and how many exceeded 20 ms.

    python -m bench.loop_lag [--runs 3] [--segment 20]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import httpx

from litellm_ctx_hook.testing.fake_upstream import free_port
from litellm_ctx_hook.testing.proxy import ProxyProcess, model_entry, start_proxy
from litellm_ctx_hook.testing.session import generate_session

PROBE = Path(__file__).with_name("loop_probe.py")
WINDOW = 24_000
HEAVY_RPS = 2.0
SMALL_RPS = 20.0
PLUGIN = "litellm_ctx_hook.proxy_handler_instance"
# (name, with the plugin, environment). The plugin's worker computes in slices and gives way to the
# proxy's loop between them (CONTEXT_WORKER_SLICE_MS); by default it leaves the interpreter as it is.
# The variants show the plugin with each interpreter-wide opt-in (a 1 ms thread switch interval,
# CONTEXT_SWITCH_INTERVAL_MS; a frozen collector with rarer full collections, CONTEXT_GC_FREEZE), with
# both (the defaults before they became opt-in), without the slices, without speculative summaries and
# in observe mode (forwarding every body whole).
VARIANTS: list[tuple[str, bool, dict[str, str]]] = [
    ("without", False, {}),
    ("without, a second one", False, {}),  # the same plain proxy twice: how far two runs differ by chance
    ("with", True, {}),
    ("with, 1 ms switch interval", True, {"CONTEXT_SWITCH_INTERVAL_MS": "1"}),
    ("with, gc freeze", True, {"CONTEXT_GC_FREEZE": "true"}),
    (
        "with, 1 ms switch interval and gc freeze",
        True,
        {"CONTEXT_SWITCH_INTERVAL_MS": "1", "CONTEXT_GC_FREEZE": "true"},
    ),
    ("with, no slices", True, {"CONTEXT_WORKER_SLICE_MS": "0"}),
    ("with, no speculation", True, {"CONTEXT_SPECULATIVE_CONDENSATION": "false"}),
    ("with, observe only", True, {"CONTEXT_MANAGEMENT_MODE": "observe"}),
]
SWITCH = ("with, 0.2 ms switch interval", True, {"CONTEXT_SWITCH_INTERVAL_MS": "0.2"})


class Upstream:
    """The fake upstream in a process of its own (its work must not share this process's GIL)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "litellm_ctx_hook.testing.fake_upstream", "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                httpx.get(self.url + "/v1/models", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("fake upstream did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def config(upstream: str, plugin: bool) -> dict[str, Any]:
    models = [
        model_entry("agent", "openai/gpt-4o", upstream, model_info={"max_input_tokens": WINDOW}),
        model_entry("gpt-4o", "openai/gpt-4o", upstream),
    ]
    callbacks = ["loop_probe.probe", *([PLUGIN] if plugin else [])]
    return {"model_list": models, "litellm_settings": {"callbacks": callbacks}}


def heavy_body(n: int, tag: str) -> dict[str, Any]:
    rng = random.Random(n)
    messages: list[dict[str, Any]] = generate_session(turns=rng.randint(16, 40), seed=n)["messages"]
    messages[1] = {**messages[1], "content": f"[{tag}-{n}] {messages[1]['content']}"}  # a new conversation
    return {"model": "agent", "messages": messages, "max_tokens": 256}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def segment(proxy: ProxyProcess, seconds: float, tag: str, seed: int) -> dict[str, Any]:
    small: list[float] = []
    failures: list[int] = []
    heavy_done = 0
    # Made before the segment starts: the client's own work must not compete with the proxy's.
    bodies = [json.dumps(heavy_body(seed + n, tag)).encode() for n in range(int(seconds * HEAVY_RPS) + 1)]
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=50)
    async with httpx.AsyncClient(
        base_url=proxy.base_url, headers=proxy.auth_headers, timeout=120, limits=limits
    ) as client:
        await client.get("/loop-probe", params={"reset": 1})

        async def heavy(n: int) -> None:
            nonlocal heavy_done
            resp = await client.post(
                "/v1/chat/completions", content=bodies[n], headers={"content-type": "application/json"}
            )
            if resp.status_code != 200:
                failures.append(resp.status_code)
            heavy_done += 1

        async def tiny(n: int) -> None:
            body = {"model": "gpt-4o", "messages": [{"role": "user", "content": f"ping {tag} {n}"}], "max_tokens": 8}
            started = time.perf_counter()
            resp = await client.post("/v1/chat/completions", json=body)
            small.append(time.perf_counter() - started)
            if resp.status_code != 200:
                failures.append(resp.status_code)

        tasks: list[asyncio.Task[None]] = []
        start = time.perf_counter()
        next_heavy = next_small = 0.0
        h = s = 0
        loop = asyncio.get_running_loop()
        while (now := time.perf_counter() - start) < seconds:
            if now >= next_heavy and h < len(bodies):
                tasks.append(loop.create_task(heavy(h)))
                h += 1
                next_heavy += 1 / HEAVY_RPS
            if now >= next_small:
                tasks.append(loop.create_task(tiny(s)))
                s += 1
                next_small += 1 / SMALL_RPS
            await asyncio.sleep(max(0.0, min(next_heavy, next_small) - (time.perf_counter() - start)))
        await asyncio.gather(*tasks)
        report = (await client.get("/loop-probe")).json()
    return {
        "heavy": heavy_done,
        "small": len(small),
        "failures": failures,
        "small_p50_ms": round(pct(small, 0.5) * 1000, 1),
        "small_p99_ms": round(pct(small, 0.99) * 1000, 1),
        "probe": report,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--segment", type=float, default=15.0)
    parser.add_argument("--switch", action="store_true", help="also the plugin with a 0.2 ms switch interval")
    parser.add_argument("--only", action="append", help="a proxy to run (again for more; default: all)")
    args = parser.parse_args()
    chosen = VARIANTS + ([SWITCH] if args.switch else [])
    if args.only:
        chosen = [v for v in chosen if v[0] in args.only]
    upstream = Upstream()
    try:
        with ExitStack() as stack:
            proxies = {
                name: stack.enter_context(
                    start_proxy(config(upstream.url, plugin), env, files={"loop_probe.py": PROBE})
                )
                for name, plugin, env in chosen
            }
            for name, proxy in proxies.items():  # warm-up: imports, tokenizers, connections
                asyncio.run(segment(proxy, 4, f"warm-{name}", 900_000))
            runs = []
            names = list(proxies)
            for r in range(args.runs):
                order = names[r % len(names) :] + names[: r % len(names)]  # each proxy goes first in turn
                run = {n: asyncio.run(segment(proxies[n], args.segment, f"r{r}-{n}", r * 10_000)) for n in order}
                runs.append(run)
                brief = {n: {k: v for k, v in run[n]["probe"].items() if k != "lags_ms"} for n in names}
                print(json.dumps({"run": r, **brief}), flush=True)
    finally:
        upstream.stop()
    print(table(runs))


def table(runs: list[dict[str, dict[str, Any]]]) -> str:
    lines = [
        "| run | proxy | loop lag p99 | loop lag max | small p50 | small p99 | small p99 ratio "
        "| plugin's longest section on the loop | sections > 20 ms | longest young GC | longest full GC |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    ratios: dict[str, list[float]] = {}
    for r, run in enumerate(runs, 1):
        base = run["without"]["small_p99_ms"]
        for name, seg in run.items():
            plugin = seg["probe"]["plugin"]
            ratio = round(seg["small_p99_ms"] / base, 3) if name != "without" and base else ""
            if isinstance(ratio, float):
                ratios.setdefault(name, []).append(ratio)
            longest = f"{plugin['sections']['max_ms']} ms" if plugin else ""
            gc = seg["probe"]["gc"]
            over = f"{plugin['sections']['over_20ms']} of {plugin['sections']['sections']}" if plugin else ""
            lines.append(
                f"| {r} | {name} | {seg['probe']['lag_p99_ms']} ms | {seg['probe']['lag_max_ms']} ms "
                f"| {seg['small_p50_ms']} ms | {seg['small_p99_ms']} ms | {ratio} | {longest} | {over} "
                f"| {max(gc['max_ms'][:2])} ms ({sum(gc['collections'][:2])}) "
                f"| {gc['max_ms'][2]} ms ({gc['collections'][2]}) |"
            )
    for name, values in ratios.items():
        lines.append(f"\n{name}: small-request p99 ratios {values}, median {statistics.median(values)}")
    for name in runs[0]:
        lags = [run[name]["probe"]["lag_p99_ms"] for run in runs]
        pooled = [x for run in runs for x in run[name]["probe"]["lags_ms"]]
        line = f"\n{name}: loop-lag p99 by run {lags}, median {statistics.median(lags)} ms"
        line += f"; p99 of all {len(pooled)} samples of the runs pooled {pct(pooled, 0.99)} ms"
        slow = [run[name]["probe"]["slowest"] for run in runs]
        if name != "without":
            diffs = [round(run[name]["probe"]["lag_p99_ms"] - run["without"]["probe"]["lag_p99_ms"], 3) for run in runs]
            lower = sum(d <= 0 for d in diffs)
            line += f"; minus the proxy without, run by run {diffs} (median {statistics.median(diffs)} ms, "
            line += f"no higher in {lower} of {len(diffs)})"
        if runs[0][name]["probe"]["plugin"]:
            line += "; in the slowest 1 % of samples the plugin's worker computed "
            line += f"{[s['worker_cpu_ms'] for s in slow]} ms (all samples {[s['worker_cpu_ms_all'] for s in slow]}) "
            line += f"and its sections ran {[s['sections_ms'] for s in slow]} ms per sample"
        line += f"; garbage collections on the loop's thread took {[s.get('loop_gc_ms') for s in slow]} ms per "
        line += f"sample of the slowest 1 % (all samples {[s.get('loop_gc_ms_all') for s in slow]})"
        line += f"; those samples lagged {[s.get('lag_ms') for s in slow]} ms, of which the loop's thread was "
        line += f"on a core {[s.get('loop_cpu_ms') for s in slow]} ms "
        line += f"(all samples {[s.get('loop_cpu_ms_all') for s in slow]})"
        line += f"; the proxy used {[run[name]['probe'].get('cpu_share') for run in runs]} cores"
        lines.append(line)
    return "\n".join(lines)


if __name__ == "__main__":
    main()
