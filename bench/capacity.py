"""Capacity at scale: 4 proxy replicas on one Redis (and on a 3-master Redis Cluster), 200 growing
conversations replayed at once.

    python -m bench.capacity                     # both topologies
    python -m bench.capacity --topology cluster --conversations 50 --steps 4

Each conversation (the 200 tau-bench runs of ../shared/evaldata, or generated agent sessions
without it) is replayed as a client would send it: request k is the conversation up to its k-th
assistant message (``--steps`` of them, evenly spaced, the last one included), one after the
other, every conversation at the same time, the k-th step of conversation c to replica
``(c + k) % 4``; so every conversation moves between replicas as it grows. The first step of each
conversation that reaches WARNING is sent to two replicas at once (a client's retry, or two agents
sharing a history): single flight decides which one makes the summary.

Every user and assistant text starts with ``[conv-NNN]`` so that each summariser call can be
attributed to its conversation (the fake summariser copies identifiers, the marker among them,
into its summary, so an extension's transcript carries it too) and no two runs of the same task
share a prefix.

Measured per topology: summariser calls per conversation against the growth bound
(growth past the first WARNING request / ((WARNING − target) × limit) + 1), summariser calls made
twice for the same transcript (duplicates across replicas), single-flight waits (the plugin's
``litellm_ctx_single_flight_wait_seconds`` histogram, summed over the replicas' ``/metrics``),
Redis commands and bytes per request (``INFO commandstats`` / ``INFO stats`` after ``CONFIG
RESETSTAT``), and Redis memory per conversation (``used_memory`` before and after; ``MEMORY
USAGE`` of the plugin's keys by kind). The summariser is the fake upstream, answering after
``--summarizer-delay`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import copy
import hashlib
import json
import math
import platform
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openai
from prometheus_client.parser import text_string_to_metric_families

from bench import evaldata
from bench.redis_servers import Servers, cluster, standalone
from litellm_ctx_hook.adapters import adapter_for
from litellm_ctx_hook.analysis.counting import TokenCounter
from litellm_ctx_hook.conversation import Format
from litellm_ctx_hook.settings import load_settings
from litellm_ctx_hook.testing.fake_upstream import FakeUpstream, is_summarizer_call
from litellm_ctx_hook.testing.proxy import ProxyProcess, model_entry, start_proxy
from litellm_ctx_hook.testing.session import generate_session

REPLICAS = 4
OUTPUT = 256
MODEL = "gpt-4o-mini"
MARK = re.compile(r"conv-(\d{3})")
START_TIMEOUT_S = 300.0
OVERHEAD_COMMANDS = {"info", "config", "cluster", "ping", "hello", "client", "command", "memory", "scan", "dbsize"}


@dataclass
class Conversation:
    index: int
    messages: list[dict[str, Any]]
    steps: list[int]  # message counts of the requests sent
    tokens: list[int]  # their token counts
    hedged: int | None = None  # the step sent to two replicas at once


@dataclass
class Result:
    topology: str
    conversations: int
    requests: int
    failed: int
    seconds: float
    reached_warning: int
    summarizer_calls: int
    calls_per_condensed_conversation: float
    max_calls_in_a_conversation: int
    within_growth_bound: int
    within_growth_bound_from_caution: int
    allowed_calls_total: float  # sum over conversations of the bound from CAUTION
    unattributed_calls: int
    duplicate_calls: int
    hedged_pairs: int
    waits: int
    wait_p50_s: float | None
    wait_p99_s: float | None
    wait_mean_s: float | None
    redis_commands: int
    commands_per_request: float
    bytes_in_per_request: float
    bytes_out_per_request: float
    top_commands: dict[str, int]
    used_memory_delta: int
    memory_per_conversation: float
    keys: dict[str, int]
    key_bytes: dict[str, int]
    key_bytes_per_conversation: float
    litellm_commands_per_request: float = 0.0  # LiteLLM's own Redis use, on its own server
    summary_values: dict[str, int] = field(default_factory=dict)  # bytes of keys, values, summary texts
    worst: list[dict[str, Any]] = field(default_factory=list)


# -- the conversations -----------------------------------------------------------------------------


def _marked(messages: list[dict[str, Any]], index: int) -> list[dict[str, Any]]:
    out = copy.deepcopy(messages)
    for m in out:
        if m.get("role") in ("user", "assistant") and isinstance(m.get("content"), str) and m["content"]:
            m["content"] = f"[conv-{index:03d}] {m['content']}"
    return out


def load_conversations(n: int) -> tuple[str, list[list[dict[str, Any]]]]:
    if evaldata.available():
        runs = [s.messages for s in evaldata.tau_runs()][:n]
        return f"tau-bench runs of ../shared/evaldata ({len(runs)})", runs
    sessions = [generate_session(turns=8 + (k * 7) % 30, seed=k)["messages"] for k in range(n)]
    return f"generated agent sessions ({n}; ../shared/evaldata absent)", sessions


def plan(messages: list[list[dict[str, Any]]], steps: int, limit: int, warning: float) -> list[Conversation]:
    counter = TokenCounter(load_settings())
    adapter = adapter_for(Format.OPENAI)
    out = []
    for index, raw in enumerate(messages):
        msgs = _marked(raw, index)
        ends = [k for k, m in enumerate(msgs) if m.get("role") == "assistant" and k > 0]
        if not ends:
            continue
        pick = sorted({ends[round(j * (len(ends) - 1) / max(1, steps - 1))] for j in range(steps)})
        tokens = [counter.count(adapter.parse({"messages": msgs[:k]}), MODEL).total for k in pick]
        conv = Conversation(index, msgs, pick, tokens)
        conv.hedged = next((j for j, t in enumerate(tokens) if t >= warning * limit), None)
        out.append(conv)
    return out


def growth_bound(
    conv: Conversation, limit: int, warning: float, target: float, since: float | None = None
) -> float | None:
    """Summariser calls allowed: growth per (WARNING − target) of the limit, + 1; the growth counted from
    the first request at ``since`` × limit (WARNING by default; CAUTION counts the speculative summary,
    made one step early). ``None`` for a conversation that never reaches WARNING."""
    if conv.hedged is None:
        return None
    start = warning if since is None else since
    first = next(j for j, t in enumerate(conv.tokens) if t >= start * limit)
    growth = conv.tokens[-1] - conv.tokens[first]
    return growth / ((warning - target) * limit) + 1


# -- the replicas ----------------------------------------------------------------------------------


def proxy_config(upstream: str, summarizer: str, window: int, coordination: str) -> dict[str, Any]:
    """LiteLLM's own Redis use (usage counters, coordination) goes to ``coordination``, a server of
    its own, so the plugin's Redis is measured alone."""
    return {
        "model_list": [
            model_entry("small", f"openai/{MODEL}", upstream, model_info={"max_input_tokens": window}),
            model_entry("summarizer", f"openai/{MODEL}", summarizer, model_info={"max_input_tokens": 128_000}),
        ],
        "litellm_settings": {"callbacks": ["litellm_ctx_hook.proxy_handler_instance", "prometheus"]},
        "general_settings": {"coordination_redis": {"url": coordination}},
    }


def start_replicas(cfg: dict[str, Any], env: dict[str, str]) -> list[ProxyProcess]:
    with ThreadPoolExecutor(REPLICAS) as pool:
        futures = [pool.submit(start_proxy, cfg, env, timeout_s=START_TIMEOUT_S) for _ in range(REPLICAS)]
        proxies = []
        errors = []
        for f in futures:
            try:
                proxies.append(f.result())
            except Exception as exc:
                errors.append(exc)
    if errors:
        for p in proxies:
            p.cleanup()
        raise errors[0]
    return proxies


def wait_histogram(proxies: Sequence[ProxyProcess]) -> dict[float, float]:
    """Cumulative buckets of litellm_ctx_single_flight_wait_seconds summed over replicas and outcomes,
    with ``sum`` under key -1.0."""
    buckets: dict[float, float] = collections.defaultdict(float)
    for proxy in proxies:
        req = urllib.request.Request(proxy.base_url + "/metrics/", headers=proxy.auth_headers)
        with urllib.request.urlopen(req, timeout=60) as resp:
            text = resp.read().decode()
        for family in text_string_to_metric_families(text):
            if family.name != "litellm_ctx_single_flight_wait_seconds":
                continue
            for s in family.samples:
                if s.name.endswith("_bucket"):
                    buckets[float(s.labels["le"])] += s.value
                elif s.name.endswith("_sum"):
                    buckets[-1.0] += s.value
    return dict(buckets)


def quantile(buckets: dict[float, float], q: float) -> float | None:
    """The ``q`` quantile by linear interpolation within the cumulative buckets (as PromQL does)."""
    edges = sorted(k for k in buckets if k >= 0)
    total = buckets.get(math.inf, 0.0)
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for edge in edges:
        count = buckets[edge]
        if count >= rank:
            if math.isinf(edge):
                return lower
            return lower + (edge - lower) * ((rank - below) / max(count - below, 1e-9))
        lower, below = edge, count
    return lower


# -- Redis -----------------------------------------------------------------------------------------


def key_usage(redis: Servers) -> tuple[dict[str, int], dict[str, int], dict[str, int]]:
    """Keys, ``MEMORY USAGE`` bytes by kind, and over the summaries: value bytes and summary characters."""
    counts: dict[str, int] = collections.Counter()
    sizes: dict[str, int] = collections.Counter()
    values: dict[str, int] = collections.Counter()
    for node in redis.nodes:
        client = node.client()
        try:
            for key in client.scan_iter(match="ctxhook:*", count=1000):
                parts = key.decode().split(":")
                kind = parts[2] if len(parts) > 2 else "?"
                counts[kind] += 1
                sizes[kind] += int(client.memory_usage(key) or 0)
                raw = client.get(key) if kind == "sum" else None
                if raw is not None:
                    values["value_bytes"] += len(raw)
                    values["key_bytes"] += len(key)
                    values["summary_chars"] += len(json.loads(raw)["body"]["summary"])
        finally:
            client.close()
    return dict(counts), dict(sizes), dict(values)


def redis_benchmark(redis: Servers) -> dict[str, float]:
    """Requests/s of ``redis-benchmark`` (GET, SET of 800-byte values, MSET of 10 keys: what the plugin
    sends) against the first node, for the ceiling of one Redis on this machine."""
    binary = shutil.which("redis-benchmark")
    if binary is None:
        return {}
    cmd = [binary, "-p", str(redis.nodes[0].port), "-q", "-n", "100000", "-c", "50", "-d", "800"]
    done = subprocess.run([*cmd, "-t", "get,set,mset", "--csv"], capture_output=True, text=True, check=False)
    out = {}
    for line in done.stdout.splitlines()[1:]:
        cells = [c.strip('"') for c in line.split(",")]
        if len(cells) >= 2:
            out[cells[0]] = float(cells[1])
    return out


def command_calls(redis: Servers) -> dict[str, int]:
    stats = redis.info("commandstats")
    out: dict[str, int] = {}
    for name, value in stats.items():
        if name.startswith("cmdstat_") and isinstance(value, dict):
            cmd = name.removeprefix("cmdstat_").split("|")[0]
            if cmd not in OVERHEAD_COMMANDS:
                out[cmd] = out.get(cmd, 0) + int(value.get("calls", 0))
    # commandstats also counts the commands a script runs: the lock release (EVAL) runs a GET and a DEL
    scripts = out.get("eval", 0) + out.get("evalsha", 0)
    for inner in ("get", "del"):
        if inner in out:
            out[inner] = max(0, out[inner] - scripts)
    return {k: v for k, v in out.items() if v}


# -- the replay ------------------------------------------------------------------------------------


async def replay(proxies: Sequence[ProxyProcess], convs: Sequence[Conversation]) -> tuple[int, int]:
    clients = [
        # the SDK's retries cover dropped connections of an overloaded replica (the request then counts once)
        openai.AsyncOpenAI(base_url=p.base_url + "/v1", api_key=p.master_key, max_retries=2, timeout=600)
        for p in proxies
    ]
    sent = failed = 0

    async def one(client: openai.AsyncOpenAI, messages: list[dict[str, Any]]) -> bool:
        try:
            await client.chat.completions.create(model="small", messages=messages, max_tokens=OUTPUT)  # type: ignore[arg-type]
            return True
        except openai.APIError as exc:
            print(f"  request failed: {type(exc).__name__}: {str(exc)[:200]}", file=sys.stderr)
            return False

    async def conversation(conv: Conversation) -> None:
        nonlocal sent, failed
        for j, k in enumerate(conv.steps):
            replica = (conv.index + j) % len(clients)
            body = conv.messages[:k]
            if j == conv.hedged:
                other = (replica + 1) % len(clients)
                oks = list(await asyncio.gather(one(clients[replica], body), one(clients[other], body)))
            else:
                oks = [await one(clients[replica], body)]
            sent += len(oks)
            failed += oks.count(False)

    await asyncio.gather(*(conversation(c) for c in convs))
    for c in clients:
        await c.close()
    return sent, failed


def run_topology(
    name: str, redis: Servers, convs: list[Conversation], window: int, delay: float, args: argparse.Namespace
) -> Result:
    settings = load_settings()
    limit = window - OUTPUT
    warning, target = settings.condensation_warning_threshold, settings.condensation_target_ratio
    with contextlib.ExitStack() as stack, FakeUpstream() as upstream, FakeUpstream(delay_s=delay) as summarizer:
        env = {
            "REDIS_URL": redis.url,
            "CONDENSATION_MODEL": "summarizer",
            "CONDENSATION_QUALITY_THRESHOLD": "0.5",
        }
        litellm_redis = stack.enter_context(standalone())
        cfg = proxy_config(upstream.url, summarizer.url, window, litellm_redis.url)
        print(f"[{name}] starting {REPLICAS} replicas …", file=sys.stderr)
        proxies = start_replicas(cfg, env)
        try:
            before_memory = int(redis.info("memory")["used_memory"])
            redis.reset_stats()
            litellm_redis.reset_stats()
            summarizer.clear()
            print(f"[{name}] replaying {len(convs)} conversations …", file=sys.stderr)
            started = time.monotonic()
            sent, failed = asyncio.run(replay(proxies, convs))
            seconds = time.monotonic() - started
            calls = command_calls(redis)
            stats = redis.info("stats")
            after_memory = int(redis.info("memory")["used_memory"])
            buckets = wait_histogram(proxies)
            keys, key_bytes, values = key_usage(redis)
            litellm_calls = sum(command_calls(litellm_redis).values())
        finally:
            for p in proxies:
                p.cleanup()
        summary_calls = [r.body for r in summarizer.requests_to("/chat/completions") if is_summarizer_call(r.body)]
    per_conv: collections.Counter[int] = collections.Counter()
    unattributed = 0
    transcripts: collections.Counter[str] = collections.Counter()
    for body in summary_calls:
        text = json.dumps(body["messages"])
        transcripts[hashlib.sha256(text.encode()).hexdigest()] += 1
        found = {int(m) for m in MARK.findall(text)}
        if len(found) == 1:
            per_conv[found.pop()] += 1
        else:
            unattributed += 1
    condensed = [c for c in convs if c.hedged is not None]
    caution = settings.condensation_caution_threshold
    within = within_caution = 0
    allowed_total = 0.0
    worst = []
    for c in condensed:
        bound = growth_bound(c, limit, warning, target) or 1.0
        bound_caution = growth_bound(c, limit, warning, target, since=caution) or 1.0
        allowed_total += bound_caution
        n = per_conv.get(c.index, 0)
        within += n <= bound
        within_caution += n <= bound_caution
        if n > bound:
            worst.append({"conversation": c.index, "calls": n, "allowed": round(bound, 2)})
    total_cmds = sum(calls.values())
    waits = buckets.get(math.inf, 0.0)
    return Result(
        topology=name,
        conversations=len(convs),
        requests=sent,
        failed=failed,
        seconds=round(seconds, 1),
        reached_warning=len(condensed),
        summarizer_calls=len(summary_calls),
        calls_per_condensed_conversation=round(len(summary_calls) / max(1, len(condensed)), 2),
        max_calls_in_a_conversation=max(per_conv.values(), default=0),
        within_growth_bound=within,
        within_growth_bound_from_caution=within_caution,
        allowed_calls_total=round(allowed_total, 1),
        unattributed_calls=unattributed,
        duplicate_calls=sum(n - 1 for n in transcripts.values()),
        hedged_pairs=len(condensed),
        waits=int(waits),
        wait_p50_s=quantile(buckets, 0.5),
        wait_p99_s=quantile(buckets, 0.99),
        wait_mean_s=round(buckets.get(-1.0, 0.0) / waits, 4) if waits else None,
        redis_commands=total_cmds,
        commands_per_request=round(total_cmds / max(1, sent), 2),
        bytes_in_per_request=round(int(stats.get("total_net_input_bytes", 0)) / max(1, sent)),
        bytes_out_per_request=round(int(stats.get("total_net_output_bytes", 0)) / max(1, sent)),
        top_commands=dict(sorted(calls.items(), key=lambda kv: -kv[1])[:8]),
        used_memory_delta=after_memory - before_memory,
        memory_per_conversation=round((after_memory - before_memory) / max(1, len(convs))),
        keys=keys,
        key_bytes=key_bytes,
        key_bytes_per_conversation=round(sum(key_bytes.values()) / max(1, len(convs))),
        litellm_commands_per_request=round(litellm_calls / max(1, sent), 2),
        summary_values=values,
        worst=sorted(worst, key=lambda w: -w["calls"])[:5],
    )


def machine() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import os

    return f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}, Python {platform.python_version()}"


def table(results: Sequence[Result], limit: int) -> Iterator[str]:
    yield (
        "| topology | requests (failed) | reached WARNING | summariser calls (sum of the bounds) "
        "| per condensed conversation (max) | within growth bound from WARNING (from CAUTION) "
        "| duplicates across replicas "
        "| single-flight waits: n, p50, p99 | Redis commands / request | bytes in / out per request "
        "| Redis memory / conversation (keys' own) |"
    )
    yield "|---|---|---|---|---|---|---|---|---|---|---|"
    for r in results:
        p50 = f"{r.wait_p50_s:.2f} s" if r.wait_p50_s is not None else "–"
        p99 = f"{r.wait_p99_s:.2f} s" if r.wait_p99_s is not None else "–"
        yield (
            f"| {r.topology} | {r.requests} ({r.failed}) | {r.reached_warning}/{r.conversations} "
            f"| {r.summarizer_calls} ({r.allowed_calls_total:.0f}) "
            f"| {r.calls_per_condensed_conversation} ({r.max_calls_in_a_conversation}) "
            f"| {r.within_growth_bound}/{r.reached_warning} ({r.within_growth_bound_from_caution}) "
            f"| {r.duplicate_calls} | {r.waits}, {p50}, {p99} "
            f"| {r.commands_per_request} | {r.bytes_in_per_request:.0f} / {r.bytes_out_per_request:.0f} "
            f"| {r.memory_per_conversation / 1024:.1f} KiB ({r.key_bytes_per_conversation / 1024:.1f} KiB) |"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--topology", choices=["standalone", "cluster", "both"], default="both")
    parser.add_argument("--conversations", type=int, default=200)
    parser.add_argument("--steps", type=int, default=5, help="requests per conversation")
    parser.add_argument("--window", type=int, default=None, help="the model's window (default: by data set)")
    parser.add_argument("--summarizer-delay", type=float, default=0.5)
    parser.add_argument("--json", type=Path, default=None, help="write the results here too")
    args = parser.parse_args(argv)

    source, raw = load_conversations(args.conversations)
    window = args.window or (3584 if evaldata.available() else 6144)
    limit = window - OUTPUT
    settings = load_settings()
    convs = plan(raw, args.steps, limit, settings.condensation_warning_threshold)
    topologies = ["standalone", "cluster"] if args.topology == "both" else [args.topology]
    results = []
    for name in topologies:
        factory = standalone if name == "standalone" else cluster
        with factory() as redis:
            results.append(run_topology(name, redis, convs, window, args.summarizer_delay, args))
    date = datetime.now(UTC).strftime("%Y-%m-%d")
    print(
        f"`python -m bench.capacity` ({date}); {machine()}; data: {source}; window {window} "
        f"(limit {limit} after {OUTPUT} output tokens); {args.steps} requests per conversation; "
        f"summariser delay {args.summarizer_delay} s; {REPLICAS} replicas.\n"
    )
    for line in table(results, limit):
        print(line)
    print()
    for r in results:
        print(
            f"{r.topology}: {r.seconds} s; commands {r.top_commands}; keys {r.keys}; key bytes {r.key_bytes}; "
            f"summary entries {r.summary_values}; used_memory delta {r.used_memory_delta}; "
            f"unattributed calls {r.unattributed_calls}; wait mean {r.wait_mean_s}; over the bound from WARNING "
            f"{r.worst}; LiteLLM's own Redis commands per request {r.litellm_commands_per_request}"
        )
    with standalone() as redis:
        ceiling = redis_benchmark(redis)
    print(f"redis-benchmark (-c 50, 800-byte values), requests/s: {ceiling}")
    if args.json:
        payload = {"results": [asdict(r) for r in results], "redis_benchmark": ceiling, "window": window}
        args.json.write_text(json.dumps(payload, indent=2, default=str))
    return 0 if all(r.failed == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
