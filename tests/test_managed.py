"""Requests the client or LiteLLM already manage: what is detected and what the plugin does."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from litellm_ctx_hook.adapters.managed import (
    AUTO_ROUTER_SUMMARY,
    CLEAR_DEFAULT_TRIGGER,
    COMPACT_DEFAULT_TRIGGER,
    COMPACTION_STATE_KEY,
    RETRIEVAL_TOOL,
    Handling,
    Signal,
    decide,
    detect,
)
from litellm_ctx_hook.conversation import Format

USER = {"role": "user", "content": "hi"}
LIMIT = 190_000


def handling(body: dict[str, Any], fmt: Format = Format.ANTHROPIC, limit: int = LIMIT) -> Handling:
    return decide(detect(body, fmt), limit).handling


def test_a_plain_request_is_managed() -> None:
    for fmt in Format:
        assert detect({"messages": [USER], "input": [USER]}, fmt) == ()
        assert handling({"messages": [USER]}, fmt) is Handling.MANAGE


def test_claude_codes_keep_all_thinking_edit_is_no_management() -> None:
    """Claude Code sends this on every request: it clears nothing."""
    body = {"messages": [USER], "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}}
    assert detect(body, Format.ANTHROPIC) == ()
    assert handling(body) is Handling.MANAGE


@pytest.mark.parametrize(
    ("edit", "trigger"),
    [
        ({"type": "compact_20260112"}, COMPACT_DEFAULT_TRIGGER),
        ({"type": "compact_20260112", "trigger": {"type": "input_tokens", "value": 60_000}}, 60_000),
        ({"type": "compact_20260112", "trigger": {"type": "input_tokens", "value": "big"}}, COMPACT_DEFAULT_TRIGGER),
    ],
)
def test_a_client_compaction_is_left_to_it_when_it_fires_within_the_budget(edit: dict[str, Any], trigger: int) -> None:
    body = {"messages": [USER], "context_management": {"edits": [edit]}}
    assert detect(body, Format.ANTHROPIC) == (Signal("client_compaction", "compact_20260112", trigger),)
    assert handling(body, limit=trigger) is Handling.OBSERVE
    decision = decide(detect(body, Format.ANTHROPIC), trigger)
    assert decision.reason and str(trigger) in decision.reason
    # past the budget it would fire only after the window overflowed: the plugin manages
    assert handling(body, limit=trigger - 1) is Handling.MANAGE


def test_openais_list_form_of_compaction_is_read() -> None:
    body = {"input": [USER], "context_management": [{"type": "compaction", "compact_threshold": 50_000}]}
    assert detect(body, Format.RESPONSES) == (Signal("client_compaction", "compaction", 50_000),)
    assert handling(body, Format.RESPONSES, limit=100_000) is Handling.OBSERVE


def test_clearing_edits_are_noted_but_the_plugin_still_manages() -> None:
    body = {
        "messages": [USER],
        "context_management": {
            "edits": [
                {"type": "clear_thinking_20251015", "keep": {"type": "thinking_turns", "value": 1}},
                {"type": "clear_tool_uses_20250919"},
            ]
        },
    }
    assert detect(body, Format.ANTHROPIC) == (
        Signal("client_clearing", "clear_thinking_20251015"),
        Signal("client_clearing", "clear_tool_uses_20250919", CLEAR_DEFAULT_TRIGGER),
    )
    assert handling(body, limit=CLEAR_DEFAULT_TRIGGER * 2) is Handling.MANAGE


@pytest.mark.parametrize("key", ["previous_response_id", "conversation"])
def test_server_side_history_is_observed_only(key: str) -> None:
    body = {"input": [USER], key: "resp_123"}
    assert detect(body, Format.RESPONSES) == (Signal("server_history", key),)
    assert handling(body, Format.RESPONSES) is Handling.OBSERVE
    assert handling(body, Format.OPENAI) is Handling.MANAGE  # only the Responses API keeps history


@pytest.mark.parametrize(
    ("fmt", "item"),
    [
        (Format.RESPONSES, {"type": "compaction", "encrypted_content": "gAAAA..."}),
        (Format.ANTHROPIC, {"role": "assistant", "content": [{"type": "compaction", "content": "summary"}]}),
    ],
)
def test_compaction_items_are_observed_only(fmt: Format, item: dict[str, Any]) -> None:
    body = {"messages": [USER, item, USER], "input": [USER, item, USER]}
    assert detect(body, fmt) == (Signal("compaction_item", "compaction"),)
    assert handling(body, fmt) is Handling.OBSERVE


@pytest.mark.parametrize(
    "summary",
    [
        {"role": "assistant", "content": f"{AUTO_ROUTER_SUMMARY}\nthe user asked for X"},
        {"role": "assistant", "content": [{"type": "output_text", "text": f"{AUTO_ROUTER_SUMMARY}\nX"}]},
    ],
)
def test_the_auto_routers_compaction_is_left_while_it_fits(summary: dict[str, Any]) -> None:
    body = {"messages": [{"role": "system", "content": "s"}, summary, USER], "input": [summary, USER]}
    for fmt in Format:
        assert detect(body, fmt) == (Signal("litellm_compaction", "context_compaction"),)
        assert handling(body, fmt) is Handling.FIT_ONLY


def test_the_auto_routers_compaction_state_is_read_from_a_deployment_calls_kwargs() -> None:
    applied = {"messages": [USER], COMPACTION_STATE_KEY: SimpleNamespace(summary=("id", object()))}
    armed = {"messages": [USER], COMPACTION_STATE_KEY: SimpleNamespace(summary=None)}
    assert handling(applied, Format.OPENAI) is Handling.FIT_ONLY
    assert handling(armed, Format.OPENAI) is Handling.MANAGE


@pytest.mark.parametrize(
    "tool",
    [
        {"type": "function", "function": {"name": RETRIEVAL_TOOL, "parameters": {}}},
        {"name": RETRIEVAL_TOOL, "input_schema": {}},
        {"type": "custom", "name": RETRIEVAL_TOOL},
    ],
)
def test_litellms_compression_stubs_are_left_while_they_fit(tool: dict[str, Any]) -> None:
    body = {"messages": [USER], "tools": [{"name": "bash"}, tool]}
    assert detect(body, Format.ANTHROPIC) == (Signal("litellm_compression", RETRIEVAL_TOOL),)
    assert handling(body) is Handling.FIT_ONLY


def test_the_most_reserved_handling_wins() -> None:
    body = {
        "input": [USER, {"role": "assistant", "content": f"{AUTO_ROUTER_SUMMARY} x"}],
        "previous_response_id": "resp_1",
        "context_management": [{"type": "compaction", "compact_threshold": 10**9}],
    }
    decision = decide(detect(body, Format.RESPONSES), LIMIT)
    assert decision.handling is Handling.OBSERVE
    assert decision.as_report() == [
        "client_compaction:compaction",
        "server_history:previous_response_id",
        "litellm_compaction:context_compaction",
    ]


WORDS = ["compaction", "compact_20260112", "clear_tool_uses_20250919", "clear_thinking_20251015", "assistant"]
WORDS += ["all", "input_tokens", AUTO_ROUTER_SUMMARY, RETRIEVAL_TOOL, ""]
KEYS = ["type", "role", "content", "name", "function", "edits", "trigger", "keep", "value", "compact_threshold", "text"]
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from(WORDS),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=3),
    max_leaves=10,
)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(
    st.dictionaries(
        st.sampled_from(["messages", "input", "tools", "context_management", "previous_response_id", "x"]), JSONISH
    ),
    st.sampled_from(list(Format)),
    st.integers(min_value=1, max_value=10**7),
)
def test_any_body_is_read_without_error(body: dict[str, Any], fmt: Format, limit: int) -> None:
    """Bad input never raises: at worst the request is managed as any other."""
    decision = decide(detect(body, fmt), limit)
    assert isinstance(decision.handling, Handling)
    assert (decision.reason is None) == (decision.handling is Handling.MANAGE)
