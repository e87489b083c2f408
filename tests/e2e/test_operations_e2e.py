"""Operating a real proxy: the metrics that ``deploy/`` builds on are on its ``/metrics``, and
``litellm-ctx health`` reads its Redis (healthy; then unhealthy with exit code 2 once Redis stops).

One ``litellm --config`` proxy with the plugin and LiteLLM's Prometheus callback, on a private
``redis-server`` (stopped by the last test), in front of the fake upstream.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest
from e2e.proxy import ProxyProcess, free_port, start_proxy
from e2e.test_hook_e2e import OUTPUT, PROXY_ENV, chatty_conversation, config
from prometheus_client.parser import text_string_to_metric_families
from test_deploy import SCRAPE_LABELS, Expr, dashboard_exprs, rule_exprs

from litellm_ctx_hook.testing.fake_upstream import FakeUpstream

MANAGED_REQUESTS = 5  # requests below that reach the plugin's report (rejected and malformed ones do not)


@dataclass
class Ops:
    proxy: ProxyProcess
    upstream: FakeUpstream
    redis: subprocess.Popen[bytes]
    redis_url: str


@pytest.fixture(scope="module")
def ops(module_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ops]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    redis = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    env = {**PROXY_ENV, "REDIS_URL": url, "CONTEXT_STATS_FLUSH_INTERVAL": "0.2"}
    try:
        with start_proxy(config(module_upstream.url), env) as proxy:
            ops = Ops(proxy, module_upstream, redis, url)
            _traffic(ops)
            yield ops
    finally:
        redis.terminate()
        redis.wait(timeout=10)


def _traffic(ops: Ops) -> None:
    """Requests that give every series the dashboard and the rules use a sample."""
    client = openai.OpenAI(base_url=ops.proxy.base_url + "/v1", api_key=ops.proxy.master_key, max_retries=0)
    claude = anthropic.Anthropic(base_url=ops.proxy.base_url, api_key=ops.proxy.master_key, max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    claude.messages.create(model="claude-small", max_tokens=100, messages=[{"role": "user", "content": "hi"}])
    messages = chatty_conversation()
    messages[1]["content"] += f" (run {secrets.token_hex(4)})"
    for _ in range(2):  # a summary made (cache miss), then reused (hit)
        client.chat.completions.create(model="small", messages=messages, max_tokens=OUTPUT)  # type: ignore[arg-type]
    ops.upstream.reply_text = "I'm sorry, but I can't help with that."  # a refusal: the summary fails the gate
    try:
        other = chatty_conversation(turns=280)
        client.chat.completions.create(model="small", messages=other, max_tokens=OUTPUT)  # type: ignore[arg-type]
    finally:
        ops.upstream.reply_text = None
    with pytest.raises(openai.BadRequestError, match="context_window_exceeded"):
        client.chat.completions.create(
            model="small", messages=[{"role": "system", "content": "rule " * 20_000}, {"role": "user", "content": "hi"}]
        )
    malformed = {"model": "small", "input": [{"role": "user", "content": 5}], "max_output_tokens": OUTPUT}
    req = urllib.request.Request(
        ops.proxy.base_url + "/v1/responses",
        data=json.dumps(malformed).encode(),
        headers={**ops.proxy.auth_headers, "Content-Type": "application/json"},
    )
    with contextlib.suppress(urllib.error.HTTPError):  # refused by LiteLLM after the plugin passed it on
        urllib.request.urlopen(req, timeout=30).close()


def _scrape(proxy: ProxyProcess) -> dict[str, list[dict[str, str]]]:
    """Sample name -> the label sets of its samples, from the proxy's ``/metrics/``."""
    req = urllib.request.Request(proxy.base_url + "/metrics/", headers=proxy.auth_headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read().decode()
    samples: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, []).append(dict(s.labels))
    return samples


def _missing(expr: Expr, samples: dict[str, list[dict[str, str]]]) -> list[str]:
    problems = []
    for name, matchers in expr.metrics.items():
        series = samples.get(name)
        if not series:
            problems.append(f"{name} is not exported")
            continue
        for label, (op, value) in matchers.items():
            if label in SCRAPE_LABELS:
                continue
            if not any(label in s for s in series):
                problems.append(f"{name} has no label {label!r}")
            elif op == "=" and not any(s.get(label) == value for s in series):
                problems.append(f"{name} has no series with {label}={value!r}")
    labels_here = {label for name in expr.metrics for s in samples.get(name, []) for label in s}
    for g in expr.grouping - SCRAPE_LABELS - labels_here:
        problems.append(f"grouping label {g!r} is on none of {sorted(expr.metrics)}")
    return problems


def test_every_metric_and_label_of_the_dashboard_and_rules_is_exported(ops: Ops) -> None:
    samples = _scrape(ops.proxy)
    exprs = rule_exprs() + dashboard_exprs()
    problems = {e.text.strip(): p for e in exprs if (p := _missing(e, samples))}
    assert not problems, json.dumps(problems, indent=1)
    # the traffic reached the series the alerts watch
    assert any(s["outcome"] == "failed" for s in samples["litellm_ctx_summarizer_calls_total"])
    assert {s["result"] for s in samples["litellm_ctx_cache_total"]} >= {"hit", "miss"}
    assert samples["litellm_ctx_redis_up"] == [{"target": ops.redis_url}]


def _health(ops: Ops, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REDIS_URL": ops.redis_url, "CONDENSATION_MODEL": "summarizer"}
    return subprocess.run(
        [sys.executable, "-m", "litellm_ctx_hook.cli", "health", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_health_is_healthy_against_the_live_proxys_redis(ops: Ops) -> None:
    deadline = time.monotonic() + 10
    while True:  # the proxy adds its counts to Redis within CONTEXT_STATS_FLUSH_INTERVAL
        done = _health(ops, "--json", "--config", str(ops.proxy.config_path))
        report: dict[str, Any] = json.loads(done.stdout)
        counters = report["checks"]["counters"]
        if counters["requests"] >= MANAGED_REQUESTS or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert done.returncode == 0, done.stdout + done.stderr
    assert report["status"] == "healthy"
    assert report["issues"] == []
    redis = report["checks"]["redis"]
    assert redis["reachable"] is True and redis["target"] == ops.redis_url
    assert redis["keys"]["sum"], "the summaries the proxy made are counted by scope"
    assert all(scope.startswith("key-") for scope in redis["keys"]["sum"])
    assert report["checks"]["config"] == {
        "status": "healthy",
        "path": str(ops.proxy.config_path),
        "hook_registered": True,
        "summarizers": {"summarizer": True},
    }
    assert counters["requests"] == MANAGED_REQUESTS
    assert round(counters["cache_hit_ratio"], 2) == 0.33  # two summaries made (misses), one reused (hit)
    assert counters["rejection_rate"] == round(1 / (MANAGED_REQUESTS + 1), 4)
    assert counters["invalid_requests"] == 1
    assert counters["internal_errors"] == 0
    assert counters["condensation_success_rate"] == 1.0  # the refused summary fell back to the extractive one
    assert counters["summarizer_failure_rate"] == 0.5  # of two summariser calls, the refused one
    assert counters["avg_processing_ms"] > 0


def test_health_is_unhealthy_with_exit_2_and_one_line_once_redis_stops(ops: Ops) -> None:
    ops.redis.terminate()
    ops.redis.wait(timeout=10)
    done = _health(ops, "--json")
    assert done.returncode == 2, done.stdout + done.stderr
    assert json.loads(done.stdout)["status"] == "unhealthy"
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"unhealthy: Redis at {ops.redis_url} is unreachable (ConnectionError")
