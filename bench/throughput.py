"""Proxy throughput with the plugin vs without it: same config otherwise, one run, same machine.

``litellm --config`` proxies in front of the same fake upstream, identical but for their
callbacks: none, or ``litellm_ctx_hook.proxy_handler_instance``. SAFE traffic: a ~20k-token
conversation (each request with its own last message, as real traffic), 8 concurrent clients.
A third proxy with a hook that does nothing (registered the same way) is the control: its ratio
shows the noise floor. ``--opt-in`` adds the plugin with each interpreter-wide opt-in setting
(``CONTEXT_SWITCH_INTERVAL_MS=1``, ``CONTEXT_GC_FREEZE=true``). Each run drives every proxy for
``--seconds`` in turn, the order rotating from run to run, so all see the same machine noise; a
proxy's ratio in a run is its requests against those of the proxy without a hook in that run,
and the result is the median of the runs' ratios, with their spread. Also each proxy's CPU time
per request (from /proc: what a busy machine changes least; its ratio is the throughput one
CPU-bound proxy process can reach), the plugin's own time per request measured in this process,
and the p50 latency the plugin adds.

    python -m bench.throughput [--runs 5] [--seconds 8] [--opt-in]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import httpx

from litellm_ctx_hook.testing.fake_upstream import FakeUpstream
from litellm_ctx_hook.testing.proxy import ProxyProcess, model_entry, start_proxy
from litellm_ctx_hook.testing.session import generate_session

CLIENTS = 8
PLUGIN = "litellm_ctx_hook.proxy_handler_instance"
OPT_IN = {
    "with, 1 ms switch interval": {"CONTEXT_SWITCH_INTERVAL_MS": "1"},
    "with, gc freeze": {"CONTEXT_GC_FREEZE": "true"},
}


def conversation() -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = generate_session(turns=24)["messages"]
    return msgs  # ~20k tokens, SAFE for a 128k model


async def load(proxy: ProxyProcess, seconds: float, tag: str) -> list[float]:
    base = conversation()
    latencies: list[float] = []
    stop = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=proxy.base_url, headers=proxy.auth_headers, timeout=60) as client:

        async def worker(w: int) -> None:
            n = 0
            while time.monotonic() < stop:
                n += 1
                body = {"model": "gpt-4o", "messages": [*base, {"role": "user", "content": f"{tag} {w} {n}?"}]}
                started = time.perf_counter()
                resp = await client.post("/v1/chat/completions", json=body)
                resp.raise_for_status()
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker(w) for w in range(CLIENTS)))
    return latencies


def hook_cost_ms(n: int = 300) -> float:
    """The plugin's own time per request, in this process: the pre-call and header hooks on the same
    conversation, each request a fresh JSON body with its own last message (as the proxy gets it)."""
    from litellm_ctx_hook.proxy.hook import ContextHook

    hook = ContextHook()
    raw = json.dumps({"model": "gpt-4o", "messages": conversation()})

    class Key:
        team_id = None
        api_key = "sk-bench"

    def body(i: int) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(raw)
        data["messages"].append({"role": "user", "content": f"question {i}?"})
        data["metadata"] = {"user_api_key_hash": "bench"}
        return data

    async def run() -> float:
        await hook.async_pre_call_hook(Key(), None, body(-1), "acompletion")  # warm: counts cached
        bodies = [body(i) for i in range(n)]
        started = time.perf_counter()
        for data in bodies:
            await hook.async_pre_call_hook(Key(), None, data, "acompletion")
            await hook.async_post_call_response_headers_hook(data, Key(), None)
        return (time.perf_counter() - started) / n

    return 1000 * min(asyncio.run(run()) for _ in range(3))


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process so far: a noisy machine changes wall time, not this."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


CONTROL_HOOK = """
from litellm.integrations.custom_logger import CustomLogger


class Control(CustomLogger):
    async def async_pre_call_hook(self, user_api_key_dict, cache, data, call_type):
        return data

    async def async_post_call_response_headers_hook(self, data, user_api_key_dict, response, *args, **kwargs):
        return {"x-ctx-risk-level": "SAFE"}


handler = Control()
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0, help="each proxy's share of a run")
    parser.add_argument("--opt-in", action="store_true", help="also the plugin with each opt-in setting")
    args = parser.parse_args()
    with FakeUpstream() as upstream:
        models = [model_entry("gpt-4o", "openai/gpt-4o", upstream.url)]
        plugin = {"model_list": models, "litellm_settings": {"callbacks": [PLUGIN]}}
        configs: dict[str, tuple[dict[str, Any], dict[str, str | Path] | None, dict[str, str]]] = {
            "without": ({"model_list": models, "litellm_settings": {}}, None, {}),
            # The noise floor: a hook that does nothing, registered the same way.
            "control": (
                {"model_list": models, "litellm_settings": {"callbacks": ["control_hook.handler"]}},
                {"control_hook.py": CONTROL_HOOK},
                {},
            ),
            "with": (plugin, None, {}),
        }
        if args.opt_in:
            configs.update({name: (plugin, None, env) for name, env in OPT_IN.items()})
        with ExitStack() as stack:
            proxies = {
                name: stack.enter_context(start_proxy(cfg, env, files=f)) for name, (cfg, f, env) in configs.items()
            }
            for proxy in proxies.values():  # warm-up
                asyncio.run(load(proxy, 3, "warm"))
            names = list(proxies)
            results: dict[str, list[list[float]]] = {name: [] for name in names}
            cpu = dict.fromkeys(names, 0.0)
            for r in range(args.runs):
                order = names[r % len(names) :] + names[: r % len(names)]  # each proxy goes first in turn
                for name in order:
                    proxy = proxies[name]
                    before = cpu_seconds(proxy.process.pid)
                    results[name].append(asyncio.run(load(proxy, args.seconds, f"{name}{r}")))
                    cpu[name] += cpu_seconds(proxy.process.pid) - before
                line = {n: round(len(results[n][r]) / len(results["without"][r]), 3) for n in names[1:]}
                print(json.dumps({"run": r + 1, "ratios": line}), flush=True)
            with_hook = proxies["with"]
            hdr = httpx.post(
                with_hook.base_url + "/v1/chat/completions",
                headers=with_hook.auth_headers,
                json={"model": "gpt-4o", "messages": conversation()},
                timeout=60,
            ).headers
    report(results, cpu, args.seconds, hdr)


def report(results: dict[str, list[list[float]]], cpu: dict[str, float], seconds: float, hdr: Any) -> None:
    names = list(results)
    runs = len(results["without"])
    done = {k: sum(len(rnd) for rnd in v) for k, v in results.items()}
    cpu_ms = {k: 1000 * cpu[k] / done[k] for k in names}
    rps = {k: done[k] / (seconds * runs) for k in names}
    p50 = {k: statistics.median(x for rnd in v for x in rnd) for k, v in results.items()}
    ratios = {k: [len(a) / len(b) for a, b in zip(results[k], results["without"], strict=True)] for k in names[1:]}
    summary = {
        "clients": CLIENTS,
        "runs": runs,
        "seconds_each": seconds,
        "conversation_tokens": int(hdr.get("x-ctx-tokens-before", 0)),
        "risk": hdr.get("x-ctx-risk-level"),
        "requests_per_s": {k: round(v, 2) for k, v in rps.items()},
        "ratio_by_run": {k: [round(x, 3) for x in v] for k, v in ratios.items()},
        "median_ratio": {k: round(statistics.median(v), 3) for k, v in ratios.items()},
        "proxy_cpu_ms_per_request": {k: round(v, 2) for k, v in cpu_ms.items()},
        "cpu_ratio": {k: round(cpu_ms["without"] / cpu_ms[k], 3) for k in names[1:]},
        "plugin_in_process_ms_per_request": round(hook_cost_ms(), 3),
        "p50_latency_ms": {k: round(v * 1000, 1) for k, v in p50.items()},
        "p50_added_ms": round((p50["with"] - p50["without"]) * 1000, 1),
    }
    print(json.dumps(summary, indent=2))
    print(
        "\n| proxy | requests/s | ratio: median of runs | ratio by run | CPU ms / request | CPU ratio | p50 latency |"
    )
    print("|---|---|---|---|---|---|---|")
    for k in names:
        by_run = ", ".join(f"{x:.3f}" for x in ratios.get(k, []))
        median = f"**{statistics.median(ratios[k]):.3f}**" if k in ratios else ""
        spread = f" ({min(ratios[k]):.3f}-{max(ratios[k]):.3f})" if k in ratios else ""
        cpu_ratio = f"{cpu_ms['without'] / cpu_ms[k]:.3f}" if k != "without" else ""
        print(
            f"| {k} | {rps[k]:.2f} | {median}{spread} | {by_run} | {cpu_ms[k]:.2f} | {cpu_ratio} "
            f"| {p50[k] * 1000:.1f} ms |"
        )


if __name__ == "__main__":
    main()
