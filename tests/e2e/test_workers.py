"""A real proxy with two worker processes, under uvicorn (``--num_workers 2``) and under gunicorn
(``--run_gunicorn``), sharing one private Redis.

* one summary for a conversation sent to both workers at once;
* metrics summed over the workers: prometheus_client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``,
  which LiteLLM also sets itself when its ``prometheus`` callback is on) on LiteLLM's ``/metrics/`` and
  on ``CONTEXT_METRICS_PORT``; each worker's own count is read from its file in that directory;
* a model summary left to finish in the background outlives its request while the worker serves
  others, and later turns on either worker use it;
* on SIGTERM the worker cancels the summaries still being made, releases their Redis locks and exits
  without an error or a "Task was destroyed but it is pending!".

The summariser alias talks to an upstream of its own, so its delay can be set apart from the model's.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
from e2e.proxy import ProxyProcess, free_port, start_proxy
from e2e.test_hook_e2e import OUTPUT, PROXY_ENV, chatty_conversation, config
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from bench.redis_servers import RedisUnavailableError, Servers, standalone
from litellm_ctx_hook.testing.fake_upstream import FakeUpstream

WORKERS = 2
SERVERS = {
    # a worker that takes long to import LiteLLM on a busy machine is not killed as hung
    "uvicorn": ["--num_workers", str(WORKERS), "--timeout_worker_healthcheck", "120"],
    "gunicorn": ["--num_workers", str(WORKERS), "--run_gunicorn"],
}
START_TIMEOUT_S = 240.0
STUCK_S = 60.0  # a gunicorn worker not started this long after the proxy is live is stuck
REQUESTS = "litellm_ctx_requests"


@dataclass
class Server:
    proxy: ProxyProcess
    upstream: FakeUpstream
    summarizer: FakeUpstream  # the summariser alias's own upstream
    redis: Servers
    multiproc_dir: Path
    metrics_port: int

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.proxy.base_url + "/v1", api_key=self.proxy.master_key, max_retries=0)

    def chat(self, messages: list[dict[str, Any]]) -> Any:
        return self.client().chat.completions.with_raw_response.create(
            model="small",
            messages=messages,  # type: ignore[arg-type]
            max_tokens=OUTPUT,
        )

    def summaries_made(self) -> int:
        return len(self.summarizer.requests_to("/chat/completions"))

    def main_bodies(self) -> list[Any]:
        return [r.body for r in self.upstream.requests_to("/chat/completions")]

    def by_worker(self) -> dict[int, float]:
        """Requests counted by each worker process, read from its own file in the multiprocess directory."""
        counts: dict[int, float] = {}
        for path in self.multiproc_dir.glob("counter_*.db"):
            pid = int(path.stem.rsplit("_", 1)[1])
            metrics = MultiProcessCollector.merge([str(path)], accumulate=True)
            counts[pid] = sum(s.value for m in metrics if m.name == REQUESTS for s in m.samples)
        return counts

    def scraped(self, url: str, headers: dict[str, str] | None = None) -> float:
        """``litellm_ctx_requests_total`` summed over its labels, as a scrape of ``url`` reports it."""
        req = urllib.request.Request(url, headers=headers or {})
        with urllib.request.urlopen(req, timeout=30) as resp:
            text = resp.read().decode()
        families = {f.name: f for f in text_string_to_metric_families(text)}
        family = families.get(REQUESTS)
        return sum(s.value for s in family.samples if s.name == REQUESTS + "_total") if family else 0.0

    def scrape_litellm(self) -> float:
        return self.scraped(self.proxy.base_url + "/metrics/", self.proxy.auth_headers)

    def scrape_own_port(self) -> float:
        return self.scraped(f"http://127.0.0.1:{self.metrics_port}/metrics")


def wait_workers_started(proxy: ProxyProcess, n: int, *, gunicorn: bool, timeout_s: float = START_TIMEOUT_S) -> None:
    """Wait until ``n`` workers have started; under gunicorn, replace a worker stuck in its start.

    Since LiteLLM 1.110 its gunicorn master runs a thread (its query-engine reaper) when it forks
    the workers, and a fork while that thread holds an import lock leaves the worker deadlocked in
    its start-up (seen in about one start in five here, with or without the plugin). Gunicorn
    replaces a worker that dies: a worker not started after ``STUCK_S`` is killed.
    """
    deadline = time.monotonic() + timeout_s
    stuck_at = time.monotonic() + STUCK_S
    while proxy.log_text().count("Application startup complete") < n:
        assert proxy.process.poll() is None, proxy.log_tail()
        assert time.monotonic() < deadline, f"{n} workers did not start:\n{proxy.log_tail()}"
        if gunicorn and time.monotonic() > stuck_at:
            log = proxy.log_text()
            for pid in _children(proxy.process.pid):
                if f"[{pid}] [INFO] Application startup complete" not in log:
                    os.kill(pid, signal.SIGKILL)
            stuck_at = time.monotonic() + STUCK_S
        time.sleep(0.2)


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@pytest.fixture(scope="module", params=sorted(SERVERS))
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    try:
        redis_servers = standalone()
        private_redis = redis_servers.__enter__()
    except RedisUnavailableError as exc:
        if os.environ.get("CTX_REQUIRE_REDIS") == "1":  # CI: a missing Redis is a failure
            pytest.fail(f"{exc} (CTX_REQUIRE_REDIS=1 requires it)", pytrace=False)
        pytest.skip(str(exc))
    multiproc_dir = tmp_path_factory.mktemp(f"prometheus-{request.param}")
    metrics_port = free_port()
    with FakeUpstream() as upstream, FakeUpstream() as summarizer:
        cfg = config(upstream.url)
        for entry in cfg["model_list"]:
            if entry["model_name"] == "summarizer":
                entry["litellm_params"]["api_base"] = summarizer.url + "/v1"
        env = {
            **PROXY_ENV,
            "REDIS_URL": private_redis.url,
            "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir),
            "CONTEXT_METRICS_PORT": str(metrics_port),
        }
        try:
            with start_proxy(cfg, env, args=SERVERS[request.param], timeout_s=START_TIMEOUT_S) as proxy:
                wait_workers_started(proxy, WORKERS, gunicorn=request.param == "gunicorn")
                yield Server(proxy, upstream, summarizer, private_redis, multiproc_dir, metrics_port)
        finally:
            redis_servers.__exit__(None, None, None)


@pytest.fixture(autouse=True)
def _reset(server: Server) -> None:
    server.upstream.clear()
    server.summarizer.clear()
    server.summarizer.delay_s = 0


def tagged(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation made new (no earlier test cached it)."""
    messages[1]["content"] += f" (run {secrets.token_hex(4)})"
    return messages


def on_both_workers(server: Server, send: Callable[[int], Any], batch: int = 8, attempts: int = 5) -> list[Any]:
    """Send batches of ``batch`` concurrent requests until both workers have served some; the replies."""
    before = server.by_worker()
    replies: list[Any] = []
    for _ in range(attempts):
        with ThreadPoolExecutor(batch) as pool:
            replies += list(pool.map(send, range(batch)))
        after = server.by_worker()
        if sum(1 for pid, n in after.items() if n > before.get(pid, 0)) >= WORKERS:
            return replies
    pytest.fail(f"the requests all went to one worker: {before} -> {server.by_worker()}")


def test_one_summary_for_a_conversation_sent_to_both_workers(server: Server) -> None:
    server.summarizer.delay_s = 1.0  # the concurrent requests overlap the summary being made
    messages = tagged(chatty_conversation())
    replies = on_both_workers(server, lambda _: server.chat(messages))
    assert all(r.parse().choices[0].message.content for r in replies)
    assert server.summaries_made() == 1, "one summariser call for one conversation on two workers"
    bodies = server.main_bodies()
    assert len(bodies) == len(replies)
    assert all(len(b["messages"]) < len(messages) for b in bodies)  # condensed, every one


def test_metrics_are_summed_across_workers(server: Server) -> None:
    before, before_litellm, before_own = server.by_worker(), server.scrape_litellm(), server.scrape_own_port()
    replies = on_both_workers(
        server, lambda k: server.chat([{"role": "user", "content": f"hello {k} {secrets.token_hex(3)}"}])
    )
    after = server.by_worker()
    per_worker = {pid: n - before.get(pid, 0) for pid, n in after.items()}
    assert sum(1 for n in per_worker.values() if n > 0) == WORKERS
    assert sum(per_worker.values()) == len(replies)
    for _ in range(6):  # whichever worker answers the scrape, it reports the sum over both
        assert server.scrape_litellm() - before_litellm == len(replies)
        assert server.scrape_own_port() - before_own == len(replies)


def model_summaries(server: Server) -> int:
    """Summaries by the summariser model (not provisional ones) in Redis."""
    return sum(1 for e in summary_entries(server) if e["model"].startswith("summarizer:") and not e["provisional"])


def summary_entries(server: Server) -> list[dict[str, Any]]:
    out = []
    for node in server.redis.nodes:
        client = node.client()
        try:
            for key in client.scan_iter(match="ctxhook:v1:sum:*"):
                raw = client.get(key)
                if raw is not None:
                    out.append(json.loads(raw)["body"])
        finally:
            client.close()
    return out


def test_a_background_summary_outlives_its_request_and_serves_both_workers(server: Server) -> None:
    server.summarizer.delay_s = 8.0  # longer than the request's 5 s budget: it finishes in the background
    messages = tagged(chatty_conversation())
    made_before = model_summaries(server)
    first = server.chat(messages)
    assert first.headers["x-ctx-cache"] == "miss"
    assert "Summary:" not in json.dumps(server.main_bodies()[-1]["messages"])  # served extractive meanwhile
    deadline = time.monotonic() + 30
    while server.summaries_made() < 1:  # the request may return before the call is sent
        assert time.monotonic() < deadline, "the summariser was never called"
        time.sleep(0.1)
    # the worker goes on serving other requests while the summary is being made
    others = on_both_workers(server, lambda k: server.chat([{"role": "user", "content": f"other {k}"}]))
    assert all(r.parse().choices[0].message.content for r in others)
    deadline = time.monotonic() + 60
    while model_summaries(server) == made_before:
        assert time.monotonic() < deadline, "the background summary never reached Redis"
        time.sleep(0.2)
    server.upstream.clear()
    grown = [*messages, {"role": "assistant", "content": "Booked HAT100."}, {"role": "user", "content": "Thanks!"}]
    on_both_workers(server, lambda _: server.chat(grown), batch=4)
    bodies = server.main_bodies()
    assert bodies
    without = [b["messages"][:3] for b in bodies if "Summary:" not in json.dumps(b["messages"])]
    assert not without, f"requests sent without the model's summary: {without}"  # on both workers
    assert server.summaries_made() == 1


def test_shutdown_cancels_background_summaries_cleanly(server: Server) -> None:
    """Last in this module: it stops the server."""
    server.summarizer.delay_s = 120.0  # never finishes before the shutdown
    on_both_workers(server, lambda _: server.chat(tagged(chatty_conversation())), batch=2)
    assert server.summaries_made()  # summaries under way, in the background
    assert server.redis.keys("ctxhook:v1:lock:*"), "the background summaries hold their single-flight locks"
    seen = len(server.proxy.log_text())
    started = time.monotonic()
    server.proxy.process.send_signal(signal.SIGTERM)  # as an orchestrator does: to the main process only
    server.proxy.process.wait(timeout=60)
    took = time.monotonic() - started
    log = server.proxy.log_text()[seen:]  # what the workers wrote while stopping
    assert took < 30, f"the server took {took:.0f} s to stop"
    assert not server.redis.keys("ctxhook:v1:lock:*"), "single-flight locks left in Redis after the shutdown"
    assert "background summaries cancelled" in log
    for bad in ("Task was destroyed but it is pending", "Traceback", "unhandled exception"):
        assert bad not in log, log
