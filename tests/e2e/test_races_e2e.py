"""Races and crashes with real proxies and a real Redis.

* A replica killed (SIGKILL) while it holds a conversation's single-flight lock: the other replica
  serves the conversation meanwhile, takes over once the lock expires, and the conversation gets
  one extra summary, not more.
* The same conversation sent concurrently to one process: one summary, one condensed request.
  (Two processes at once: ``test_replicas.py``.)
* A proxy restarted mid-conversation resumes from Redis: the next turn is sent with the same
  condensed prefix, without calling the summariser again.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import redis
from e2e.proxy import ProxyProcess, start_proxy
from e2e.test_hook_e2e import OUTPUT, PROXY_ENV, config

from litellm_ctx_hook.testing.fake_upstream import FakeUpstream, is_summarizer_call

SUMMARY_TIMEOUT_S = 10  # CONDENSATION_TIMEOUT: a lock is held at most this + 2 s


def conversation(turns: int = 300) -> list[dict[str, Any]]:
    run = secrets.token_hex(4)  # a conversation no earlier run cached
    msgs: list[dict[str, Any]] = [{"role": "system", "content": "You are a travel agent."}]
    for k in range(turns):
        msgs.append({"role": "user", "content": f"Check flight R{run}-{k} on 2024-05-{k % 28 + 1:02d} for me."})
        msgs.append({"role": "assistant", "content": f"Flight R{run}-{k} has {k % 9} seats left at ${200 + k}."})
    msgs.append({"role": "user", "content": "Book the cheapest one."})
    return msgs


def send(proxy: ProxyProcess, messages: list[dict[str, Any]]) -> dict[str, str]:
    client = openai.OpenAI(base_url=proxy.base_url + "/v1", api_key=proxy.master_key, max_retries=0, timeout=60)
    raw = client.chat.completions.with_raw_response.create(model="small", messages=messages, max_tokens=OUTPUT)  # type: ignore[arg-type]
    assert raw.parse().choices[0].message.content
    return dict(raw.headers)


def summaries(upstream: FakeUpstream) -> list[Any]:
    return [r.body for r in upstream.requests if is_summarizer_call(r.body)]


def main_requests(upstream: FakeUpstream) -> list[Any]:
    return [r.body for r in upstream.requests_to("/chat/completions") if not is_summarizer_call(r.body)]


def wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_replica_killed_holding_the_lock_costs_at_most_one_extra_summary(
    module_upstream: FakeUpstream, redis_url: str
) -> None:
    env = {
        **PROXY_ENV,
        "REDIS_URL": redis_url,
        "CONDENSATION_TIMEOUT": str(SUMMARY_TIMEOUT_S),
        "MAX_CONTEXT_PROCESSING_TIME": "2000",
    }
    store = redis.Redis.from_url(redis_url)
    cfg = config(module_upstream.url)
    with start_proxy(cfg, env) as doomed, start_proxy(cfg, env) as survivor:
        module_upstream.clear()
        messages = conversation()
        locks_before = set(store.scan_iter(match="ctxhook:v1:lock:*"))
        module_upstream.delay_s = 60  # the summariser (and everything else) hangs: the lock stays held
        hung = threading.Thread(target=lambda: _ignore_errors(send, doomed, messages), daemon=True)
        hung.start()
        wait_for(lambda: bool(summaries(module_upstream)), 30, "the doomed replica's summariser call")
        lock = next(iter(set(store.scan_iter(match="ctxhook:v1:lock:*")) - locks_before), None)
        assert lock is not None and store.pttl(lock) > 0  # held, with an expiry
        os.killpg(doomed.process.pid, signal.SIGKILL)
        doomed.process.wait(10)
        module_upstream.delay_s = 0
        module_upstream.clear()

        # While the dead replica's lock lasts, the survivor serves the conversation (with the
        # extractive summary, its own or the provisional one the dead replica had stored).
        send(survivor, messages)
        assert not summaries(module_upstream)  # no second summariser call while the lock is held
        assert len(main_requests(module_upstream)[-1]["messages"]) < len(messages)
        assert store.exists(lock)  # it did not break someone else's lock
        wait_for(lambda: not store.exists(lock), SUMMARY_TIMEOUT_S + 5, "the dead replica's lock to expire")

        # After the expiry the survivor goes on: its requests are served, and the conversation has
        # cost at most one summariser call besides the dead replica's.
        for _ in range(3):
            send(survivor, messages)
            assert len(main_requests(module_upstream)[-1]["messages"]) < len(messages)
        assert len(summaries(module_upstream)) <= 1
    store.close()


def _ignore_errors(fn: Callable[..., Any], *args: Any) -> None:
    with contextlib.suppress(Exception):  # the replica is killed under it
        fn(*args)


def test_one_conversation_sent_concurrently_to_one_process(module_upstream: FakeUpstream, redis_url: str) -> None:
    with start_proxy(config(module_upstream.url), {**PROXY_ENV, "REDIS_URL": redis_url}) as proxy:
        module_upstream.clear()
        module_upstream.delay_s = 0.5  # slow enough for the requests to overlap
        messages = conversation()
        try:
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda _: send(proxy, messages), range(4)))
        finally:
            module_upstream.delay_s = 0
        assert len(summaries(module_upstream)) == 1
        bodies = main_requests(module_upstream)
        assert len(bodies) == 4
        assert all(b["messages"] == bodies[0]["messages"] for b in bodies)
        assert len(bodies[0]["messages"]) < len(messages)


def test_a_restarted_proxy_resumes_from_redis_with_the_same_prefix(
    module_upstream: FakeUpstream, redis_url: str
) -> None:
    env = {**PROXY_ENV, "REDIS_URL": redis_url}
    cfg = config(module_upstream.url)
    messages = conversation()
    with start_proxy(cfg, env) as before:
        module_upstream.clear()
        assert send(before, messages)["x-ctx-cache"] == "miss"
        assert len(summaries(module_upstream)) == 1
        first = main_requests(module_upstream)[-1]["messages"]
    # The process is gone (SIGTERM); a new one starts with empty memory.
    later = [
        *messages,
        {"role": "assistant", "content": "Booked."},
        {"role": "user", "content": "Thanks, and a hotel?"},
    ]
    with start_proxy(cfg, env) as after:
        module_upstream.clear()
        headers = send(after, later)
        assert headers["x-ctx-cache"] == "hit"
        assert not summaries(module_upstream)  # nothing summarised again
        second = main_requests(module_upstream)[-1]["messages"]
    assert second[: len(first)] == first  # the same prefix: the provider's prompt cache keeps hitting
    assert second[len(first) :] == later[len(messages) :]
