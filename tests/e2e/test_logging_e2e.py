"""The plugin's log lines from a real proxy run (``CONTEXT_LOG_FORMAT=json``): a malformed request
is one WARNING line with its request id and what is wrong, counted by route and reason; nothing the
plugin logs above DEBUG quotes a conversation, whatever happens (managed, malformed, summariser
failing); no stack trace."""

from __future__ import annotations

import json
import secrets
import urllib.request
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from e2e.proxy import ProxyProcess, start_proxy
from e2e.test_hook_e2e import OUTPUT, PROXY_ENV, chatty_conversation, config

from litellm_ctx_hook.testing.fake_upstream import FakeUpstream

SECRET = f"zebra{secrets.token_hex(3)}quartz"  # distinctive content, to grep the log for


@pytest.fixture(scope="module")
def proxy(module_upstream: FakeUpstream) -> Iterator[ProxyProcess]:
    with start_proxy(config(module_upstream.url), {**PROXY_ENV, "CONTEXT_LOG_FORMAT": "json"}) as p:
        yield p


def _post(proxy: ProxyProcess, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(proxy.base_url + path, json=body, headers=proxy.auth_headers, timeout=60)


def _plugin_lines(proxy: ProxyProcess) -> list[dict[str, Any]]:
    out = []
    for line in proxy.log_text().splitlines():
        if line.startswith("{") and '"logger": "litellm_ctx_hook' in line:
            out.append(json.loads(line))
    return out


def _metric(proxy: ProxyProcess, name: str) -> str:
    req = urllib.request.Request(proxy.base_url + "/metrics/", headers=proxy.auth_headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        text: str = resp.read().decode()
    return "\n".join(line for line in text.splitlines() if line.startswith(name))


def test_logs_name_what_is_wrong_and_never_quote_the_conversation(
    proxy: ProxyProcess, module_upstream: FakeUpstream
) -> None:
    # A malformed request: one WARNING line, with the request id and the reason.
    bad = _post(proxy, "/v1/chat/completions", {"model": "small", "messages": [{"role": "wizard", "content": SECRET}]})
    call_id = bad.headers.get("x-litellm-call-id")
    # More of everything, all carrying the secret: a managed conversation, malformed bodies on every
    # route, a streamed one, and a summariser that fails.
    chat = chatty_conversation()
    chat[1]["content"] += f" {SECRET}"
    assert _post(proxy, "/v1/chat/completions", {"model": "small", "messages": chat, "max_tokens": OUTPUT}).is_success
    _post(
        proxy, "/v1/messages", {"model": "claude-small", "max_tokens": 10, "messages": [{"role": "user", "content": 7}]}
    )
    # A role is a protocol field, named when short; a long one (it could be anything) only by its length.
    _post(proxy, "/v1/messages", {"model": "claude-small", "max_tokens": 10, "messages": [{"role": SECRET * 2}]})
    _post(proxy, "/v1/responses", {"model": "small", "input": [{"type": "message", "role": "user", "content": 5}]})
    _post(proxy, "/v1/responses", {"model": "small", "input": SECRET, "instructions": [SECRET]})
    _post(
        proxy,
        "/v1/chat/completions",
        {"model": "small", "messages": [{"role": "user", "content": SECRET}], "stream": True},
    )
    module_upstream.fail_status = 500
    try:
        chat2 = chatty_conversation(310)
        chat2[1]["content"] += f" {SECRET} again"
        _post(proxy, "/v1/chat/completions", {"model": "small", "messages": chat2, "max_tokens": OUTPUT})
    finally:
        module_upstream.fail_status = None

    lines = _plugin_lines(proxy)
    warnings = [x for x in lines if x["level"] == "WARNING" and x.get("reason")]
    first = warnings[0]
    assert first["route"] == "openai" and first["reason"] == "unknown_role"
    assert call_id is not None and first["request_id"] == call_id and call_id in first["message"]
    assert {(x["route"], x["reason"]) for x in warnings} >= {
        ("openai", "unknown_role"),
        ("anthropic", "bad_content"),
        ("responses", "bad_content"),
        ("responses", "bad_field"),
    }
    assert not [x for x in lines if x["level"] in ("ERROR", "CRITICAL")]
    assert all("exc_info" not in x for x in lines)
    assert not [x for x in lines if SECRET in json.dumps(x)]  # no line of the plugin quotes a conversation
    assert SECRET not in proxy.log_text()  # nor any line of the proxy's log
    counted = _metric(proxy, "litellm_ctx_invalid_requests_total")
    assert 'reason="unknown_role",route="openai"' in counted
