"""The hook class itself, driven as LiteLLM drives it (no proxy process)."""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest
from prometheus_client import REGISTRY
from support import settings

from litellm_ctx_hook.proxy.hook import ContextHook

MALFORMED: list[tuple[str, dict[str, Any], str, str]] = [
    ("acompletion", {"model": "gpt-4o", "messages": "not a list"}, "openai", "not_list"),
    ("acompletion", {"model": "gpt-4o", "messages": [{"role": "wizard", "content": "x"}]}, "openai", "unknown_role"),
    ("acompletion", {"model": "gpt-4o", "messages": [{"role": "user", "content": [None]}]}, "openai", "not_object"),
    ("aresponses", {"model": "gpt-4o", "input": "hi", "instructions": 5}, "responses", "bad_field"),
    (
        "anthropic_messages",
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "system": 3},
        "anthropic",
        "bad_field",
    ),
]


def _invalid(route: str, reason: str) -> float:
    value = REGISTRY.get_sample_value("litellm_ctx_invalid_requests_total", {"route": route, "reason": reason})
    return value or 0.0


@pytest.mark.parametrize(("call_type", "body", "route", "reason"), MALFORMED)
async def test_a_malformed_request_passes_unchanged_with_one_log_line(
    call_type: str, body: dict[str, Any], route: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    hook = ContextHook(settings())
    before = _invalid(route, reason)
    data = copy.deepcopy(body)
    with caplog.at_level(logging.INFO, logger="litellm_ctx_hook"):
        out = await hook.async_pre_call_hook(None, None, data, call_type)
    assert out is data and data == body  # passed through, not a byte changed
    records = [r for r in caplog.records if r.name.startswith("litellm_ctx_hook")]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING and records[0].exc_info is None  # no stack trace
    assert "passed through unchanged" in records[0].getMessage()
    assert _invalid(route, reason) == before + 1


async def test_prefix_changes_are_reported_per_request_in_headers_metadata_and_metrics() -> None:
    from test_engine_steps import requests  # a growing agent session, managed by clearing in steps

    # A model LiteLLM does not know: its window is REAL_TEXT_MODEL_TOKENS.
    hook = ContextHook(settings(context_speculative_condensation=False, real_text_model_tokens=8_100))
    counter = hook.metrics.prefix_changes.labels(route="openai")
    before = counter._value.get()
    flags, headers = [], []
    for body in requests([25] * 40):
        data = {"model": "ctx-test-unknown-model", "max_tokens": 100, **copy.deepcopy(body)}
        out = await hook.async_pre_call_hook(None, None, data, "acompletion")
        report = out["metadata"]["ctx_hook"]
        flags.append(report["prefix_changed"])
        headers.append(
            (await hook.async_post_call_response_headers_hook(out, None, None) or {})["x-ctx-prefix-changed"]
        )
    assert headers == [str(f).lower() for f in flags] and set(headers) == {"true", "false"}
    assert 1 < sum(flags) < len(flags) // 3  # a few steps, not a change on every managed turn
    assert counter._value.get() - before == sum(flags)


async def test_an_oversized_max_tokens_is_lowered_in_the_body_sent_and_said_in_a_header() -> None:
    from test_engine_fit import claude_code_body  # ~23k of pinned head, ~5k a read

    # A model LiteLLM does not know: its window is REAL_TEXT_MODEL_TOKENS (72k, as in the report).
    hook = ContextHook(settings(context_speculative_condensation=False, real_text_model_tokens=72_000))
    body = claude_code_body(4)  # 43k of input: WARNING and above with the 40k that max_tokens 32000 leaves
    body["model"] = "ctx-test-unknown-model"
    body["thinking"] = {"type": "enabled", "budget_tokens": 31_999}
    data = copy.deepcopy(body)
    out = await hook.async_pre_call_hook(None, None, data, "anthropic_messages")
    granted = out["max_tokens"]
    assert hook.settings.output_tokens_floor <= granted < 32_000
    assert out["thinking"] == {"type": "enabled", "budget_tokens": granted - 1}  # still below max_tokens
    assert out["messages"] == body["messages"]  # the output gave way: no message changed
    headers = await hook.async_post_call_response_headers_hook(out, None, None) or {}
    assert headers["x-ctx-max-tokens"] == f"32000->{granted}"
    assert headers["x-ctx-actions"] == f"max_tokens:32000->{granted}"
    assert int(headers["x-ctx-tokens-before"]) + granted <= 72_000
