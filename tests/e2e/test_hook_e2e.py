"""The plugin in a real ``litellm --config`` proxy, driven by the official openai and anthropic SDKs.

One proxy (with ``litellm_ctx_hook.proxy_handler_instance`` and LiteLLM's Prometheus callback) in
front of a fake upstream that records every body it receives. Over-limit conversations are real
ones from ../shared/evaldata when present, else the project's generated agent session.
"""

from __future__ import annotations

import copy
import itertools
import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest
from e2e.proxy import DEFAULT_MODELS, ProxyProcess, model_entry, start_proxy, upstream_config

from bench import evaldata
from litellm_ctx_hook.adapters import adapter_for
from litellm_ctx_hook.analysis.counting import TokenCounter
from litellm_ctx_hook.conversation import Format
from litellm_ctx_hook.planning.atoms import group_atoms
from litellm_ctx_hook.settings import load_settings
from litellm_ctx_hook.testing.fake_upstream import FakeUpstream, is_summarizer_call
from litellm_ctx_hook.testing.session import anthropic_messages, generate_session

SMALL_WINDOW = 8_000
CLAUDE_WINDOW = 24_000
OUTPUT = 512


@dataclass
class Env:
    proxy: ProxyProcess
    upstream: FakeUpstream

    def openai(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.proxy.base_url + "/v1", api_key=self.proxy.master_key, max_retries=0)

    def anthropic(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.proxy.base_url, api_key=self.proxy.master_key, max_retries=0)

    def main_requests(self, endpoint: str) -> list[Any]:
        return [r.body for r in self.upstream.requests_to(endpoint) if not is_summarizer_call(r.body)]

    def summarizer_requests(self) -> list[Any]:
        return [r.body for r in self.upstream.requests if is_summarizer_call(r.body)]


def config(upstream: str) -> dict[str, Any]:
    return upstream_config(
        upstream,
        models={alias: model for alias, model in DEFAULT_MODELS.items() if alias != "summarizer"},
        callbacks=["litellm_ctx_hook.proxy_handler_instance", "prometheus"],
        extra_models=[
            # The summariser's own window, stated: "small" below is the same model with a smaller
            # max_input_tokens, and LiteLLM lets that override leak into its model table
            # (docs/architecture.md, "LiteLLM facts the hook relies on").
            model_entry("summarizer", "openai/gpt-4o-mini", upstream, model_info={"max_input_tokens": 128_000}),
            model_entry("small", "openai/gpt-4o-mini", upstream, model_info={"max_input_tokens": SMALL_WINDOW}),
            model_entry(
                "claude-small",
                "anthropic/claude-sonnet-4-5-20250929",
                upstream,
                model_info={"max_input_tokens": CLAUDE_WINDOW},
            ),
        ],
    )


PROXY_ENV = {"CONDENSATION_MODEL": "summarizer", "CONDENSATION_QUALITY_THRESHOLD": "0.5"}


@pytest.fixture(scope="module")
def env(module_upstream: FakeUpstream) -> Iterator[Env]:
    with start_proxy(config(module_upstream.url), PROXY_ENV) as proxy:
        yield Env(proxy, module_upstream)


@pytest.fixture(autouse=True)
def _clear(env: Env) -> None:
    env.upstream.clear()
    env.upstream.delay_s = 0
    env.upstream.fail_status = None


def chat_conversation() -> list[dict[str, Any]]:
    if evaldata.available():
        runs = sorted(evaldata.tau_runs(), key=lambda s: -len(json.dumps(s.messages)))
        return copy.deepcopy(runs[0].messages)
    return generate_session(turns=20)["messages"]


def claude_conversation() -> dict[str, Any]:
    if evaldata.available():
        session = next(s for s in evaldata.claude_sessions() if s.name.startswith("claude:258c7280"))
        return {"system": "You are Claude Code.", "messages": copy.deepcopy(session.messages[:120])}
    body = generate_session(turns=30)  # ~36k Claude tokens: over the 24k window
    return {"system": body["messages"][0]["content"], "messages": anthropic_messages(body["messages"])}


def assert_fits_and_intact(fmt: Format, sent: dict[str, Any], received: dict[str, Any], model: str, limit: int) -> None:
    adapter = adapter_for(fmt)
    original = adapter.parse(sent)
    got = adapter.parse(received)
    tokens = TokenCounter(load_settings()).count(got, model).total
    assert tokens <= limit, f"{tokens} tokens reached the upstream, limit {limit}"
    texts = [m.text for m in got.messages]
    # pinned: the task (first user message) and the last user turn arrive verbatim
    first_user = next(m for m in original.messages if m.role.value == "user")
    assert any(first_user.text in t for t in texts)
    assert original.messages[-1].text in texts[-1]
    atoms = group_atoms(got.messages)
    assert not atoms.orphan_results
    assert set(atoms.unanswered_calls) <= set(group_atoms(original.messages).unanswered_calls)


def test_safe_request_reaches_upstream_unchanged(env: Env) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there, order ORD-7."}]
    raw = env.openai().chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=messages)  # type: ignore[arg-type]
    assert env.main_requests("/chat/completions")[-1]["messages"] == messages
    assert raw.headers["x-ctx-risk-level"] == "SAFE"
    assert raw.headers["x-ctx-strategy"] == "MONITOR_ONLY"
    assert raw.headers["x-ctx-tokens-before"] == raw.headers["x-ctx-tokens-after"]


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_over_limit_chat_is_condensed(env: Env, stream: bool) -> None:
    messages = chat_conversation()
    client = env.openai()
    raw = client.chat.completions.with_raw_response.create(
        model="small",
        messages=messages,
        max_tokens=OUTPUT,
        stream=stream,  # type: ignore[arg-type]
    )
    if stream:
        chunks = list(raw.parse())
        assert chunks
    else:
        assert raw.parse().choices[0].message.content
    received = env.main_requests("/chat/completions")[-1]
    assert_fits_and_intact(Format.OPENAI, {"messages": messages}, received, "gpt-4o-mini", SMALL_WINDOW - OUTPUT)
    assert received["messages"][0] == messages[0]  # the system prompt, byte for byte
    assert raw.headers["x-ctx-risk-level"] in {"WARNING", "CRITICAL", "OVERFLOW"}
    assert int(raw.headers["x-ctx-tokens-after"]) < int(raw.headers["x-ctx-tokens-before"])
    assert raw.headers["x-ctx-cache"] in {"hit", "miss", "none"}


def chatty_conversation(turns: int = 300) -> list[dict[str, Any]]:
    """Many short turns: nothing worth clearing, so the plugin has to condense."""
    msgs: list[dict[str, Any]] = [{"role": "system", "content": "You are a travel agent."}]
    for k in range(turns):
        msgs.append({"role": "user", "content": f"Also check flight HAT{100 + k} on 2024-05-{k % 28 + 1:02d} for me."})
        msgs.append({"role": "assistant", "content": f"Flight HAT{100 + k} has {k % 9} seats left at ${200 + k}."})
    msgs.append({"role": "user", "content": "Book the cheapest one."})
    return msgs


def test_summarizer_goes_through_the_router_alias(env: Env) -> None:
    raw = env.openai().chat.completions.with_raw_response.create(
        model="small",
        messages=chatty_conversation(),
        max_tokens=OUTPUT,  # type: ignore[arg-type]
    )
    assert raw.headers["x-ctx-cache"] == "miss"
    calls = env.summarizer_requests()
    assert calls, "the summariser was called"
    assert calls[0]["model"] == "gpt-4o-mini"  # alias "summarizer" resolved by the proxy's router
    received = env.main_requests("/chat/completions")[-1]
    assert any("Summary:" in json.dumps(m) for m in received["messages"])  # the model's summary was used


def test_over_limit_anthropic_messages(env: Env) -> None:
    body = claude_conversation()
    raw = env.anthropic().messages.with_raw_response.create(
        model="claude-small", max_tokens=OUTPUT, system=body["system"], messages=body["messages"]
    )
    assert raw.parse().content
    received = env.main_requests("/v1/messages".removeprefix("/v1"))[-1]
    assert received["system"] in (body["system"], [{"type": "text", "text": body["system"]}])
    assert_fits_and_intact(Format.ANTHROPIC, body, received, "anthropic/claude-sonnet-4-5", CLAUDE_WINDOW - OUTPUT)
    roles = [m["role"] for m in received["messages"]]
    assert roles[0] == "user"
    assert all(a != b for a, b in itertools.pairwise(roles))
    assert "metadata" not in received or received["metadata"] == body.get("metadata")
    assert int(raw.headers["x-ctx-tokens-after"]) < int(raw.headers["x-ctx-tokens-before"])


def test_anthropic_turns_keep_their_prefix_and_a_breakpoint_at_its_end(env: Env) -> None:
    """Consecutive turns of a Claude Code-like client (breakpoints on its system prompt and newest
    message): the upstream reads the managed prefix from the cache until the next step."""
    body = claude_conversation()
    msgs = body["messages"]
    ends = [k + 1 for k in range(len(msgs)) if msgs[k]["role"] == "user"][-8:]
    system = [{"type": "text", "text": body["system"], "cache_control": {"type": "ephemeral"}}]
    flags, received = [], []
    for n in ends:
        turn = copy.deepcopy(msgs[:n])
        last = turn[-1]["content"]
        blocks = [{"type": "text", "text": last}] if isinstance(last, str) else last
        blocks[-1]["cache_control"] = {"type": "ephemeral"}
        turn[-1]["content"] = blocks
        raw = env.anthropic().messages.with_raw_response.create(
            model="claude-small", max_tokens=OUTPUT, system=system, messages=turn
        )
        flags.append(raw.headers["x-ctx-prefix-changed"])
        received.append(env.main_requests("/messages")[-1])
    assert set(flags) <= {"true", "false"} and "false" in flags[1:], flags
    for got, flag in zip(received[1:], flags[1:], strict=True):
        marked = [i for i, m in enumerate(got["messages"]) for b in m["content"] if "cache_control" in b]
        assert len(marked) == 2 and marked[-1] == len(got["messages"]) - 1  # ours, and the client's newest
        if flag == "false":  # the previous request, up to our breakpoint, byte for byte
            previous = received[received.index(got) - 1]["messages"]
            end = marked[0] + 1
            assert json.dumps(got["messages"][:end]) == json.dumps(previous[:end])


def test_an_oversized_max_tokens_gives_way_before_any_message(env: Env) -> None:
    """A Claude Code-like client reserving most of a small window for output: the upstream gets
    the messages as they were and a lower max_tokens, and the response says by how much."""
    reads = []
    for k in range(4):
        use = {"type": "tool_use", "id": f"toolu_{k}", "name": "Read", "input": {"file_path": f"f{k}.py"}}
        reads.append({"role": "assistant", "content": [{"type": "text", "text": f"Reading f{k}."}, use]})
        lines = "\n".join(f"{i:4d}  def handler_{k}_{i}(request):  # value={i * k}" for i in range(110))
        reads.append(
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{k}", "content": lines}]}
        )
    messages = [{"role": "user", "content": "Read f0 to f3 and report each note."}, *reads]
    asked = 20_000  # leaves 4k of the 24k window for ~9k tokens of input
    raw = env.anthropic().messages.with_raw_response.create(
        model="claude-small", max_tokens=asked, system="You are a coding agent.", messages=messages
    )
    assert raw.parse().content
    received = env.main_requests("/messages")[-1]
    granted = received["max_tokens"]
    assert load_settings().output_tokens_floor < granted < asked
    assert raw.headers["x-ctx-max-tokens"] == f"{asked}->{granted}"
    assert raw.headers["x-ctx-actions"] == f"max_tokens:{asked}->{granted}"
    assert received["messages"] == messages  # nothing else had to give way
    assert int(raw.headers["x-ctx-tokens-before"]) + granted <= CLAUDE_WINDOW


def test_over_limit_responses(env: Env) -> None:
    items: list[dict[str, Any]] = [{"role": "user", "content": "Fix the failing billing tests (BILL-2291)."}]
    for k in range(40):
        items.append(
            {
                "type": "function_call",
                "call_id": f"fc_{k}",
                "name": "bash",
                "arguments": json.dumps({"cmd": f"cat f{k}.py"}),
            }
        )
        items.append({"type": "function_call_output", "call_id": f"fc_{k}", "output": f"line {k} " * 120})
    items.append({"role": "user", "content": "Now summarise what you found."})
    raw = env.openai().responses.with_raw_response.create(model="small", input=items, max_output_tokens=OUTPUT)  # type: ignore[arg-type]
    assert raw.parse().output_text
    received = env.main_requests("/responses")[-1]
    assert_fits_and_intact(Format.RESPONSES, {"input": items}, received, "gpt-4o-mini", SMALL_WINDOW - OUTPUT)
    assert raw.headers["x-ctx-strategy"] != "MONITOR_ONLY"


def test_impossible_request_is_a_400_with_counts(env: Env) -> None:
    messages = [{"role": "system", "content": "rule " * 20_000}, {"role": "user", "content": "hi"}]
    with pytest.raises(openai.BadRequestError) as exc:
        env.openai().chat.completions.create(model="small", messages=messages)  # type: ignore[arg-type]
    text = str(exc.value)
    assert "context_window_exceeded" in text
    assert str(SMALL_WINDOW - SMALL_WINDOW // 10) in text  # the limit is in the message
    assert not env.main_requests("/chat/completions")  # nothing reached the upstream
    with pytest.raises(anthropic.BadRequestError, match="context_window_exceeded"):
        env.anthropic().messages.create(
            model="claude-small", max_tokens=100, system="rule " * 40_000, messages=[{"role": "user", "content": "hi"}]
        )


def test_metrics_are_scraped_from_litellm(env: Env) -> None:
    env.openai().chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    req = urllib.request.Request(env.proxy.base_url + "/metrics/", headers=env.proxy.auth_headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        text = resp.read().decode()
    assert "litellm_ctx_requests_total" in text
    assert "litellm_ctx_processing_seconds_bucket" in text


def test_plugin_fault_lets_the_request_through(module_upstream: FakeUpstream) -> None:
    module_upstream.clear()
    with start_proxy(config(module_upstream.url), {**PROXY_ENV, "CONTEXT_TEST_FAULT_INJECTION": "true"}) as proxy:
        client = openai.OpenAI(base_url=proxy.base_url + "/v1", api_key=proxy.master_key, max_retries=0)
        messages = chat_conversation()
        reply = client.chat.completions.create(model="small", messages=messages, max_tokens=OUTPUT)  # type: ignore[arg-type]
        assert reply.choices[0].message.content
        received = [r.body for r in module_upstream.requests_to("/chat/completions")][-1]
        assert len(received["messages"]) == len(messages)  # passed through unchanged
        log = proxy.log_text()
        assert "litellm-ctx-hook failed on request" in log and "RuntimeError (message at DEBUG)" in log
        assert "Traceback (most recent call last)" in log  # an internal fault: ERROR with its stack trace
