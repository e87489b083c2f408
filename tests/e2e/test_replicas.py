"""Two proxy replicas sharing one Redis: the same over-limit conversation sent to both at once
costs one summariser call, and both send the identical condensed request upstream."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
from e2e.proxy import start_proxy
from e2e.test_hook_e2e import OUTPUT, PROXY_ENV, chatty_conversation, config

from litellm_ctx_hook.testing.fake_upstream import FakeUpstream, is_summarizer_call


def test_two_replicas_share_one_summary(module_upstream: FakeUpstream, redis_url: str) -> None:
    env = {**PROXY_ENV, "REDIS_URL": redis_url}
    cfg = config(module_upstream.url)
    with start_proxy(cfg, env) as a, start_proxy(cfg, env) as b:
        module_upstream.clear()
        module_upstream.delay_s = 0.5  # the summariser is slow enough for the two requests to overlap
        messages = chatty_conversation()
        messages[1]["content"] += f" (run {secrets.token_hex(4)})"  # a conversation no earlier run cached

        def send(proxy: Any) -> str | None:
            client = openai.OpenAI(base_url=proxy.base_url + "/v1", api_key=proxy.master_key, max_retries=0)
            reply = client.chat.completions.create(model="small", messages=messages, max_tokens=OUTPUT)  # type: ignore[arg-type]
            return reply.choices[0].message.content

        with ThreadPoolExecutor(2) as pool:
            replies = list(pool.map(send, [a, b]))
        module_upstream.delay_s = 0
        assert all(replies)
        bodies = [r.body for r in module_upstream.requests_to("/chat/completions")]
        summaries = [body for body in bodies if is_summarizer_call(body)]
        main = [body for body in bodies if not is_summarizer_call(body)]
        assert len(summaries) == 1, f"{len(summaries)} summariser calls for one conversation on two replicas"
        assert len(main) == 2
        assert main[0]["messages"] == main[1]["messages"]
        assert len(main[0]["messages"]) < len(messages)
