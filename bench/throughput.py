"""Proxy throughput with the plugin vs without it: same config otherwise, one run, same machine.

Two ``litellm --config`` proxies in front of the same fake upstream, one with
``litellm_ctx_hook.proxy_handler_instance`` in its callbacks. SAFE traffic: a ~20k-token
conversation (each request with its own last message, as real traffic), 8 concurrent clients,
alternating rounds so both see the same machine noise. Reports requests/s of each, their ratio,
and the p50 latency the plugin adds.

    python -m bench.throughput
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import httpx

from litellm_ctx_hook.demo.fake_upstream import FakeUpstream
from litellm_ctx_hook.demo.proxy import ProxyProcess, model_entry, start_proxy
from litellm_ctx_hook.demo.session import generate_session

CLIENTS = 8
ROUND_S = 12.0
ROUNDS = 3


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


def main() -> None:
    with FakeUpstream() as upstream:
        models = [model_entry("gpt-4o", "openai/gpt-4o", upstream.url)]
        plain = {"model_list": models, "litellm_settings": {}}
        hooked = {"model_list": models, "litellm_settings": {"callbacks": ["litellm_ctx_hook.proxy_handler_instance"]}}
        with start_proxy(plain) as without, start_proxy(hooked) as with_hook:
            for proxy in (without, with_hook):  # warm-up
                asyncio.run(load(proxy, 3, "warm"))
            results: dict[str, list[float]] = {"without": [], "with": []}
            for r in range(ROUNDS):
                for name, proxy in (("without", without), ("with", with_hook)):
                    results[name] += asyncio.run(load(proxy, ROUND_S, f"{name}{r}"))
            seconds = ROUND_S * ROUNDS
            rps = {k: len(v) / seconds for k, v in results.items()}
            p50 = {k: statistics.median(v) for k, v in results.items()}
            hdr = httpx.post(
                with_hook.base_url + "/v1/chat/completions",
                headers=with_hook.auth_headers,
                json={"model": "gpt-4o", "messages": conversation()},
                timeout=60,
            ).headers
            print(
                json.dumps(
                    {
                        "clients": CLIENTS,
                        "seconds_each": seconds,
                        "conversation_tokens": int(hdr.get("x-ctx-tokens-before", 0)),
                        "risk": hdr.get("x-ctx-risk-level"),
                        "requests_per_s_without": round(rps["without"], 2),
                        "requests_per_s_with": round(rps["with"], 2),
                        "ratio": round(rps["with"] / rps["without"], 3),
                        "p50_latency_without_ms": round(p50["without"] * 1000, 1),
                        "p50_latency_with_ms": round(p50["with"] * 1000, 1),
                        "p50_added_ms": round((p50["with"] - p50["without"]) * 1000, 1),
                    },
                    indent=2,
                )
            )


if __name__ == "__main__":
    main()
