"""Fault injection under sustained load: a real proxy with the plugin driven for minutes with mixed
traffic while its Redis, its summariser and its main upstream fail in turn.

One ``litellm --config`` proxy with the plugin (``CONDENSATION_MODEL=summarizer``, a private
``redis-server`` as ``REDIS_URL``), in front of ``bench/fault_upstream.py`` (its own process),
which also checks every request the proxy forwards: its tokens, counted by the plugin's counter for
the model it reached, against the window less its requested output, and its tool calls and results.
Traffic, all the time: tiny SAFE chat requests (``SMALL_RPS`` a second, their latency measured),
two growing agent conversations on chat completions, a growing Claude Code style session on
``/v1/messages`` and a growing Responses conversation (each a new conversation when it ends), all
for models whose window is ``WINDOW`` tokens, so they are condensed and their summaries cached.

Phases of ``--phase`` seconds each: Redis paused (SIGSTOP), resumed, killed, restarted empty,
full (``maxmemory`` with ``allkeys-lru``, filled with other keys); the summariser answering 500,
429, too slowly (past ``CONDENSATION_TIMEOUT``), never, empty, garbage, a summary far longer than
asked, text that tries to instruct the model; the main upstream failing (500); then all well again.

LiteLLM reads ``REDIS_URL`` too and uses the same server for its own state: its requests stall for
its Redis timeouts while Redis is paused, with the plugin or without it (a proxy without the plugin
shows the same 10 s stall), so small-request latency in that phase is LiteLLM's; the plugin's own
time comes from the ``x-ctx-processing-ms`` header.

Per phase: requests; non-2xx answers the plugin caused (any but the upstream's own failure);
requests forwarded over their window or with a broken tool pair; small-request p50/p99; the slowest
managed request against ``MAX_CONTEXT_PROCESSING_TIME`` plus the stated margin; the summary-cache
hit ratio of managed requests and the seconds to the first hit after the phase began.

    python -m bench.faults [--phase 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import httpx
import redis

from litellm_ctx_hook.testing.fake_upstream import free_port
from litellm_ctx_hook.testing.proxy import model_entry, start_proxy
from litellm_ctx_hook.testing.session import anthropic_messages, generate_session, turns_of

WINDOW = 16_000
SMALL_RPS = 10.0
BUDGET_MS = 2000  # MAX_CONTEXT_PROCESSING_TIME
MARGIN_MS = BUDGET_MS // 2 + 1000  # the queue deadline (half the budget) + LiteLLM and transport
CONDENSATION_TIMEOUT_S = 5
PHASES: list[tuple[str, dict[str, Any]]] = [
    ("baseline", {}),
    ("Redis paused (SIGSTOP)", {"redis": "pause"}),
    ("Redis resumed (SIGCONT)", {"redis": "resume"}),
    ("Redis killed", {"redis": "kill"}),
    ("Redis restarted empty", {"redis": "start"}),
    ("Redis full (maxmemory, allkeys-lru)", {"redis": "fill"}),
    ("summariser 500", {"summarizer": "500"}),
    ("summariser 429", {"summarizer": "429"}),
    ("summariser times out", {"summarizer": "slow"}),
    ("summariser hangs", {"summarizer": "hang"}),
    ("summariser empty", {"summarizer": "empty"}),
    ("summariser garbage", {"summarizer": "garbage"}),
    ("summariser too long", {"summarizer": "long"}),
    ("summariser injection text", {"summarizer": "injection"}),
    ("main upstream fails (500)", {"main_status": 500}),
    ("recovered", {}),
]


class PrivateRedis:
    """A redis-server of this benchmark's own on a fixed port (no persistence)."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed")
        self.binary = binary
        self.port = free_port()
        self.dir = tempfile.TemporaryDirectory(prefix="faults-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", self.dir.name, "--protected-mode", "no", "--loglevel", "warning"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_timeout=0.5)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def signal(self, sig: signal.Signals) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def kill(self) -> None:
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)
        self.proc = None

    def fill(self) -> None:
        """``maxmemory`` with eviction, then filled with other keys until it evicts."""
        client = redis.Redis(port=self.port, socket_timeout=5)
        client.config_set("maxmemory", "16mb")
        client.config_set("maxmemory-policy", "allkeys-lru")
        junk = b"x" * 4096
        for batch in range(200):
            pipe = client.pipeline(transaction=False)
            for k in range(100):
                pipe.set(f"bench-filler:{batch}:{k}", junk)
            pipe.execute()
            if int(client.info("stats")["evicted_keys"]) > 0:
                break

    def stop(self) -> None:
        self.signal(signal.SIGCONT)
        self.kill()
        self.dir.cleanup()


@dataclass
class Record:
    phase: str
    kind: str
    status: int
    seconds: float
    managed: bool
    processing_ms: float  # the plugin's own time (x-ctx-processing-ms)
    cache: str
    error: str
    at: float


@dataclass
class Run:
    phase: str = "warm-up"
    started: float = field(default_factory=time.monotonic)
    records: list[Record] = field(default_factory=list)
    stop: bool = False


def responses_from_openai(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for m in messages:
        if m["role"] == "system":
            continue
        if m["role"] == "tool":
            items.append({"type": "function_call_output", "call_id": m["tool_call_id"], "output": m["content"]})
            continue
        if m.get("content"):
            items.append({"role": m["role"], "content": m["content"]})
        for c in m.get("tool_calls") or []:
            items.append(
                {
                    "type": "function_call",
                    "call_id": c["id"],
                    "name": c["function"]["name"],
                    "arguments": c["function"]["arguments"],
                }
            )
    return items


def bodies(kind: str, seed: int) -> list[tuple[str, dict[str, Any]]]:
    """The requests of one growing conversation: route and body at each of its assistant calls."""
    session = generate_session(turns=50, seed=seed)
    marker = f"[{kind} {seed}] "
    session["messages"][1]["content"] = marker + session["messages"][1]["content"]  # a new conversation
    out = []
    for body in turns_of(session):
        msgs = body["messages"]
        if kind == "chat":
            out.append(("/v1/chat/completions", {"model": "agent", "messages": msgs, "max_tokens": 512}))
        elif kind == "claude":
            sys_text = msgs[0]["content"]
            conv = anthropic_messages(msgs)
            if conv[-1]["role"] != "user":
                continue
            out.append(("/v1/messages", {"model": "claude", "system": sys_text, "messages": conv, "max_tokens": 512}))
        else:
            items = responses_from_openai(msgs)
            out.append(
                (
                    "/v1/responses",
                    {
                        "model": "responses",
                        "instructions": msgs[0]["content"],
                        "input": items,
                        "max_output_tokens": 512,
                    },
                )
            )
    return out


async def send(client: httpx.AsyncClient, run: Run, kind: str, route: str, body: dict[str, Any]) -> None:
    phase = run.phase
    started = time.perf_counter()
    try:
        resp = await client.post(route, json=body)
        status, text, headers = resp.status_code, resp.text[:300], resp.headers
    except httpx.HTTPError as exc:
        status, text, headers = 599, repr(exc), httpx.Headers()
    seconds = time.perf_counter() - started
    before, after = headers.get("x-ctx-tokens-before"), headers.get("x-ctx-tokens-after")
    managed = before is not None and after is not None and int(after) < int(before)
    processing = float(headers.get("x-ctx-processing-ms") or 0.0)
    run.records.append(
        Record(
            phase,
            kind,
            status,
            seconds,
            managed,
            processing,
            headers.get("x-ctx-cache", ""),
            text if status >= 300 else "",
            time.monotonic(),
        )
    )


async def conversations(client: httpx.AsyncClient, run: Run, kind: str, seed: int) -> None:
    while not run.stop:
        for route, body in bodies(kind, seed):
            if run.stop:
                return
            await send(client, run, kind, route, body)
            await asyncio.sleep(0.1)
        seed += 1000


async def small(client: httpx.AsyncClient, run: Run) -> None:
    n = 0
    tasks = []
    while not run.stop:
        n += 1
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": f"ping {n}"}], "max_tokens": 8}
        tasks.append(asyncio.create_task(send(client, run, "small", "/v1/chat/completions", body)))
        await asyncio.sleep(1 / SMALL_RPS)
    await asyncio.gather(*tasks)


async def drive(
    base_url: str, headers: dict[str, str], control: str, rds: PrivateRedis, phase_s: float
) -> tuple[Run, dict[str, float]]:
    run = Run()
    starts: dict[str, float] = {}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=60) as client, httpx.AsyncClient() as ctl:
        workers = [
            asyncio.create_task(conversations(client, run, "chat", 1)),
            asyncio.create_task(conversations(client, run, "chat", 2)),
            asyncio.create_task(conversations(client, run, "claude", 3)),
            asyncio.create_task(conversations(client, run, "responses", 4)),
            asyncio.create_task(small(client, run)),
        ]
        await asyncio.sleep(phase_s / 2)  # warm-up
        for name, action in PHASES:
            what = action.get("redis")
            if what == "pause":
                rds.signal(signal.SIGSTOP)
            elif what == "resume":
                rds.signal(signal.SIGCONT)
            elif what == "kill":
                rds.kill()
            elif what == "start":
                rds.start()
            elif what == "fill":
                await asyncio.to_thread(rds.fill)
            cmd = {
                "phase": name,
                "summarizer": action.get("summarizer", "ok"),
                "main_status": action.get("main_status"),
            }
            await ctl.post(control + "/control", json=cmd)
            run.phase = name
            starts[name] = time.monotonic()
            print(f"phase: {name}", file=sys.stderr, flush=True)
            await asyncio.sleep(phase_s)
        run.stop = True
        await asyncio.gather(*workers)
    return run, starts


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def table(run: Run, starts: dict[str, float], upstream: dict[str, Any]) -> str:
    lines = [
        "| phase | requests | plugin-caused non-2xx | upstream failures passed on | over-window forwarded "
        "| broken pairs forwarded | summariser calls | small p50 / p99 | slowest managed: plugin's time (bound) "
        "| slowest managed: client's latency | cache hit ratio | first hit after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    bound = BUDGET_MS + MARGIN_MS
    for name, _ in PHASES:
        recs = [r for r in run.records if r.phase == name]
        upstream_failed = [r for r in recs if r.status >= 300 and "fake upstream failure" in r.error]
        plugin = [r for r in recs if r.status >= 300 and r not in upstream_failed]
        small = [r.seconds for r in recs if r.kind == "small" and r.status < 300]
        managed = [r for r in recs if r.managed]
        slowest = max((r.seconds for r in managed), default=0.0) * 1000
        plugin_ms = max((r.processing_ms for r in managed), default=0.0)
        cached = [r for r in managed if r.cache in ("hit", "miss")]
        hits = [r for r in cached if r.cache == "hit"]
        first = min((r.at for r in hits), default=None)
        st = upstream["stats"].get(name, {})
        lines.append(
            f"| {name} | {len(recs)} | {len(plugin)} | {len(upstream_failed)} | {st.get('over_window', 0)} "
            f"| {st.get('broken_pairs', 0)} | {st.get('summarizer_calls', 0)} "
            f"| {pct(small, 0.5) * 1000:.0f} / {pct(small, 0.99) * 1000:.0f} ms "
            f"| {plugin_ms:.0f} ms ({'≤' if plugin_ms <= bound else '>'} {bound}) | {slowest:.0f} ms "
            f"| {len(hits)}/{len(cached)} | {'' if first is None else f'{first - starts[name]:.1f} s'} |"
        )
        for r in plugin[:3]:
            lines.append(f"<!-- {name}: {r.kind} {r.status} {r.error[:200]} -->")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--phase", type=float, default=20.0)
    args = parser.parse_args()
    rds = PrivateRedis()
    rds.start()
    port = free_port()
    upstream = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.fault_upstream",
            "--port",
            str(port),
            "--window",
            str(WINDOW),
            "--slow",
            str(CONDENSATION_TIMEOUT_S + 3),
        ],
        cwd=Path(__file__).resolve().parents[1],
        stdout=subprocess.DEVNULL,
    )
    control = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(control + "/control", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        info = {"max_input_tokens": WINDOW}
        models = [
            model_entry("agent", "openai/gpt-4o", control, model_info=info),
            model_entry("responses", "openai/gpt-4o", control, model_info=info),
            model_entry("claude", "anthropic/claude-sonnet-4-5-20250929", control, model_info=info),
            model_entry("gpt-4o", "openai/gpt-4o", control),
            model_entry("summarizer", "openai/gpt-4o-mini", control),
        ]
        cfg = {"model_list": models, "litellm_settings": {"callbacks": ["litellm_ctx_hook.proxy_handler_instance"]}}
        env = {
            "REDIS_URL": rds.url,
            "CONDENSATION_MODEL": "summarizer",
            "CONDENSATION_TIMEOUT": str(CONDENSATION_TIMEOUT_S),
            "MAX_CONTEXT_PROCESSING_TIME": str(BUDGET_MS),
        }
        with start_proxy(cfg, env) as proxy:
            run, starts = asyncio.run(drive(proxy.base_url, proxy.auth_headers, control, rds, args.phase))
            log_lines = proxy.log_text().splitlines()
            traces = [i for i, line in enumerate(log_lines) if "Traceback (most recent call last)" in line]
            for i in traces[:3]:  # what they were, for the record
                print("\n".join(log_lines[max(0, i - 2) : i + 25]), file=sys.stderr)
            stack_traces = len(traces)
            ours = sum(1 for i in traces if "litellm_ctx_hook" in "\n".join(log_lines[i : i + 40]))
        stats = httpx.get(control + "/control", timeout=10).json()
    finally:
        upstream.send_signal(signal.SIGINT)
        try:
            upstream.wait(timeout=10)
        except subprocess.TimeoutExpired:
            upstream.kill()
        rds.stop()
    print(table(run, starts, stats))
    print(
        f"\nstack traces in the proxy's log: {stack_traces} ({ours} through the plugin's code); "
        "unreadable forwarded bodies: "
        f"{sum(s.get('unreadable', 0) for s in stats['stats'].values())}"
    )


if __name__ == "__main__":
    main()
