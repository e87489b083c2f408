"""One compaction, not two: requests the client or LiteLLM already manage, on a real proxy.

A ``litellm --config`` proxy with the plugin in front of the fake upstream, driven by the openai
and anthropic SDKs. Each request is larger than the plugin would let through on its own; what
reaches the upstream shows whether the plugin stood back (the client's or LiteLLM's management
acts instead) or managed it (no one else would before the window overflows). A second proxy runs
LiteLLM's own ``compression_interception`` callback ahead of the plugin.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest
from e2e.proxy import ProxyProcess, model_entry, start_proxy

from litellm_ctx_hook.adapters import adapter_for
from litellm_ctx_hook.adapters.managed import AUTO_ROUTER_SUMMARY, RETRIEVAL_TOOL
from litellm_ctx_hook.analysis.counting import TokenCounter
from litellm_ctx_hook.conversation import Format
from litellm_ctx_hook.settings import load_settings
from litellm_ctx_hook.testing.fake_upstream import FakeUpstream, is_summarizer_call
from litellm_ctx_hook.testing.session import anthropic_messages, generate_session

CLAUDE_WINDOW = 40_000
GPT_WINDOW = 16_000
OUTPUT = 512
CLAUDE = "anthropic/claude-sonnet-4-5-20250929"


def config(upstream: str, callbacks: list[str], **settings: Any) -> dict[str, Any]:
    return {
        "model_list": [
            model_entry("summarizer", "openai/gpt-4o-mini", upstream, model_info={"max_input_tokens": 128_000}),
            model_entry("claude", CLAUDE, upstream, model_info={"max_input_tokens": CLAUDE_WINDOW}),
            model_entry("gpt", "openai/gpt-4o-mini", upstream, model_info={"max_input_tokens": GPT_WINDOW}),
        ],
        "litellm_settings": {"callbacks": callbacks, **settings},
    }


PROXY_ENV = {"CONDENSATION_MODEL": "summarizer", "CONDENSATION_QUALITY_THRESHOLD": "0.5"}


@dataclass
class Env:
    proxy: ProxyProcess
    upstream: FakeUpstream

    def openai(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.proxy.base_url + "/v1", api_key=self.proxy.master_key, max_retries=0)

    def anthropic(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.proxy.base_url, api_key=self.proxy.master_key, max_retries=0)

    def received(self) -> dict[str, Any]:
        [body] = [r.body for r in self.upstream.requests if not is_summarizer_call(r.body)]
        return body


@pytest.fixture(scope="module")
def env(module_upstream: FakeUpstream) -> Iterator[Env]:
    with start_proxy(config(module_upstream.url, ["litellm_ctx_hook.proxy_handler_instance"]), PROXY_ENV) as proxy:
        yield Env(proxy, module_upstream)


@pytest.fixture(autouse=True)
def _clear(module_upstream: FakeUpstream) -> None:
    module_upstream.clear()


def tagged(chat: list[dict[str, Any]]) -> list[dict[str, Any]]:
    chat = copy.deepcopy(chat)
    chat[1] = {**chat[1], "content": f"[{uuid.uuid4().hex[:8]}] {chat[1]['content']}"}  # no cache carries over
    return chat


def claude_body(turns: int = 40) -> dict[str, Any]:
    chat = tagged(generate_session(turns=turns)["messages"])
    return {"system": chat[0]["content"], "messages": anthropic_messages(chat)}


def tokens(fmt: Format, body: dict[str, Any], model: str) -> int:
    return TokenCounter(load_settings()).count(adapter_for(fmt).parse(body), model).total


def texts(fmt: Format, body: dict[str, Any]) -> list[str]:
    return [m.text for m in adapter_for(fmt).parse(body).messages]


def send_claude(env: Env, body: dict[str, Any], **extra: Any) -> dict[str, str]:
    raw = env.anthropic().messages.with_raw_response.create(
        model="claude", max_tokens=OUTPUT, **copy.deepcopy(body), **extra
    )
    raw.parse()
    return dict(raw.headers)


CLAUDE_LIMIT = CLAUDE_WINDOW - OUTPUT
GPT_LIMIT = GPT_WINDOW - OUTPUT


# -- the client's context_management ------------------------------------------------------------------
def test_a_client_compaction_that_fires_within_the_window_is_left_to_it(env: Env) -> None:
    body = claude_body()
    assert tokens(Format.ANTHROPIC, body, CLAUDE) > CLAUDE_LIMIT  # the plugin would have to act
    edit = {"type": "compact_20260112", "trigger": {"type": "input_tokens", "value": 30_000}}
    headers = send_claude(env, body, extra_body={"context_management": {"edits": [edit]}})
    received = env.received()
    assert texts(Format.ANTHROPIC, received) == texts(Format.ANTHROPIC, body)  # sent as the client sent it
    assert headers["x-ctx-strategy"] == "MONITOR_ONLY" and headers["x-ctx-handling"] == "observe"
    assert not [r for r in env.upstream.requests if is_summarizer_call(r.body)]  # no compaction of ours


def test_a_client_compaction_that_would_fire_past_the_window_is_managed(env: Env) -> None:
    body = claude_body()
    edit = {"type": "compact_20260112"}  # Anthropic's default trigger, 150k: past this 40k window
    headers = send_claude(env, body, extra_body={"context_management": {"edits": [edit]}})
    assert tokens(Format.ANTHROPIC, env.received(), CLAUDE) <= CLAUDE_LIMIT
    assert int(headers["x-ctx-tokens-after"]) < int(headers["x-ctx-tokens-before"])
    assert headers["x-ctx-handling"] == "manage"


def test_claude_codes_context_management_is_managed_as_any_request(env: Env) -> None:
    body = claude_body()
    edit = {"type": "clear_thinking_20251015", "keep": "all"}  # sent by Claude Code on every request
    headers = send_claude(env, body, extra_body={"context_management": {"edits": [edit]}})
    assert tokens(Format.ANTHROPIC, env.received(), CLAUDE) <= CLAUDE_LIMIT
    assert headers["x-ctx-strategy"] != "MONITOR_ONLY" and headers["x-ctx-handling"] == "manage"


# -- the Responses API's server-side history and compaction items -----------------------------------------
def responses_input(turns: int = 20) -> list[dict[str, Any]]:
    chat = tagged(generate_session(turns=turns)["messages"])
    items: list[dict[str, Any]] = []
    for m in chat:
        if m["role"] == "tool":
            items.append({"type": "function_call_output", "call_id": m["tool_call_id"], "output": m["content"]})
            continue
        if m.get("content"):
            items.append({"role": m["role"], "content": m["content"]})
        for call in m.get("tool_calls") or []:
            fn = call["function"]
            items.append(
                {"type": "function_call", "call_id": call["id"], "name": fn["name"], "arguments": fn["arguments"]}
            )
    return items


def send_responses(env: Env, items: list[dict[str, Any]], **extra: Any) -> dict[str, str]:
    raw = env.openai().responses.with_raw_response.create(
        model="gpt",
        input=copy.deepcopy(items),  # type: ignore[arg-type]
        max_output_tokens=OUTPUT,
        **extra,
    )
    raw.parse()
    return dict(raw.headers)


def test_a_request_continuing_a_server_side_history_is_observed_only(env: Env) -> None:
    items = responses_input()
    assert tokens(Format.RESPONSES, {"input": items}, "gpt-4o-mini") > GPT_LIMIT
    headers = send_responses(env, items, previous_response_id="resp_" + uuid.uuid4().hex)
    received = env.received()
    assert received.get("previous_response_id", "").startswith("resp_")
    assert texts(Format.RESPONSES, received) == texts(Format.RESPONSES, {"input": items})
    assert headers["x-ctx-strategy"] == "MONITOR_ONLY" and headers["x-ctx-handling"] == "observe"


def test_a_request_after_a_compaction_item_is_observed_only(env: Env) -> None:
    items = responses_input()
    items.insert(2, {"type": "compaction", "id": "cmp_1", "encrypted_content": "gAAAAB" + "x" * 64})
    headers = send_responses(env, items)
    received = env.received()
    assert any(isinstance(i, dict) and i.get("type") == "compaction" for i in received["input"])
    assert len(received["input"]) == len(items)
    assert headers["x-ctx-strategy"] == "MONITOR_ONLY" and headers["x-ctx-handling"] == "observe"


# -- LiteLLM's own reductions -------------------------------------------------------------------------
def auto_router_compacted(turns: int) -> list[dict[str, Any]]:
    """A chat as LiteLLM's auto router leaves it after its context_compaction."""
    chat = tagged(generate_session(turns=turns)["messages"])
    summary = {"role": "assistant", "content": f"{AUTO_ROUTER_SUMMARY}\nThe user asked to fix BILL-2291."}
    return [chat[0], summary, *chat[1:]]


def test_a_request_the_auto_router_compacted_is_left_while_it_fits(env: Env) -> None:
    messages = auto_router_compacted(turns=15)  # between the plugin's trigger and the window
    assert 0.8 * GPT_LIMIT < tokens(Format.OPENAI, {"messages": messages}, "gpt-4o-mini") <= GPT_LIMIT
    raw = env.openai().chat.completions.with_raw_response.create(
        model="gpt",
        messages=messages,  # type: ignore[arg-type]
        max_tokens=OUTPUT,
    )
    assert env.received()["messages"] == messages
    assert raw.headers["x-ctx-strategy"] == "MONITOR_ONLY" and raw.headers["x-ctx-handling"] == "fit_only"


def test_a_request_the_auto_router_compacted_is_managed_when_it_does_not_fit(env: Env) -> None:
    messages = auto_router_compacted(turns=20)
    assert tokens(Format.OPENAI, {"messages": messages}, "gpt-4o-mini") > GPT_LIMIT
    raw = env.openai().chat.completions.with_raw_response.create(
        model="gpt",
        messages=messages,  # type: ignore[arg-type]
        max_tokens=OUTPUT,
    )
    assert tokens(Format.OPENAI, env.received(), "gpt-4o-mini") <= GPT_LIMIT
    assert raw.headers["x-ctx-strategy"] != "MONITOR_ONLY" and raw.headers["x-ctx-handling"] == "fit_only"


def test_litellms_compression_interception_and_the_plugin_compact_once(module_upstream: FakeUpstream) -> None:
    """LiteLLM's callback (first in the list) compresses to BM25 stubs and a retrieval tool; the
    plugin sees them and leaves the request as LiteLLM made it, since it fits. Had the plugin run
    first, its result would be below LiteLLM's trigger: one reduction either way."""
    cfg = config(
        module_upstream.url,
        ["compression_interception", "litellm_ctx_hook.proxy_handler_instance"],
        # LiteLLM's target is above the plugin's own trigger: the plugin would condense it again
        compression_interception_params={"compression_trigger": 20_000, "compression_target": 30_000},
    )
    with start_proxy(cfg, PROXY_ENV) as proxy:
        env = Env(proxy, module_upstream)
        body = claude_body()
        sent = tokens(Format.ANTHROPIC, body, CLAUDE)
        for attempt in range(2):
            module_upstream.clear()
            headers = send_claude(env, body)
            received = env.received()
            seen = (attempt, sent, {k: v for k, v in headers.items() if k.startswith("x-ctx")})
            assert tokens(Format.ANTHROPIC, received, CLAUDE) <= CLAUDE_LIMIT < sent, seen
            if RETRIEVAL_TOOL in [t.get("name") for t in received.get("tools") or []]:  # LiteLLM compressed it
                assert tokens(Format.ANTHROPIC, received, CLAUDE) > 0.8 * CLAUDE_LIMIT, seen  # and it alone
                assert headers["x-ctx-strategy"] == "MONITOR_ONLY" and headers["x-ctx-handling"] == "fit_only", seen
                assert not [r for r in module_upstream.requests if is_summarizer_call(r.body)], seen
            else:  # the plugin ran first: its result is below LiteLLM's trigger, which did nothing
                assert headers["x-ctx-handling"] == "manage" and headers["x-ctx-strategy"] != "MONITOR_ONLY", seen
