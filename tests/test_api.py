"""The seed Python API (analysis and management halves)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support import anthropic_body, openai_chat, responses_body, settings

from litellm_ctx_hook import api
from litellm_ctx_hook.adapters import adapter_for
from litellm_ctx_hook.analysis.counting import TokenCounter
from litellm_ctx_hook.analysis.risk import ContextManagementStrategy, ContextRiskLevel
from litellm_ctx_hook.engine.engine import ContextEngine


@pytest.fixture(autouse=True)
def fresh_engine() -> Iterator[None]:
    api.set_default_engine(ContextEngine(settings()))
    yield
    api.set_default_engine(None)


def test_analysis_half() -> None:
    msgs = openai_chat(10)
    r = api.analyze_context_state(msgs, model="gpt-4o", max_tokens=3000)
    assert r.limit_tokens == 3000 and r.messages_count == len(msgs)
    info = api.get_context_info(msgs, model="gpt-4o")
    expected = TokenCounter(settings()).count(adapter_for("openai").parse({"messages": msgs}), "gpt-4o").total
    assert info["estimated_tokens"] == expected == r.current_tokens
    assert info["hard_limit"] == 128000 - 4096
    assert api.should_condense_context(msgs, model="gpt-4o", max_tokens=expected) is True
    assert api.get_context_management_strategy(msgs, model="gpt-4o", max_tokens=expected) is (
        ContextManagementStrategy.CONDENSATION_AGGRESSIVE
    )
    assert api.should_condense_context(msgs, model="gpt-4o") is False


def test_generic_model_uses_specification_windows() -> None:
    assert api.get_context_info([{"role": "user", "content": "hi"}])["hard_limit"] == 200_000 - 4096
    assert api.get_context_info([{"role": "user", "content": "hi"}], is_vision=True)["hard_limit"] == 65_536 - 4096


def test_anthropic_and_responses_accept_list_or_body() -> None:
    body = anthropic_body(3)
    whole = api.get_context_info(body, format="anthropic", model="claude-sonnet-4-5")
    only_messages = api.get_context_info(body["messages"], format="anthropic", model="claude-sonnet-4-5")
    assert whole["estimated_tokens"] > only_messages["estimated_tokens"]  # the system prompt counts
    rbody = responses_body(3)
    assert (
        api.get_context_info(rbody, format="responses", model="gpt-4.1")["estimated_tokens"]
        > api.get_context_info(rbody["input"], format="responses", model="gpt-4.1")["estimated_tokens"]
    )


def test_analysis_cache_and_clear() -> None:
    msgs = openai_chat(5)
    api.analyze_context_state(msgs, model="gpt-4o")
    api.analyze_context_state(msgs, model="gpt-4o")
    stats = api.get_context_performance_stats()
    assert stats["analysis_cache"]["hits"] == 1
    assert stats["cache_size"] > 0
    api.clear_context_caches()
    stats = api.get_context_performance_stats()
    assert stats["cache_size"] == 0 and stats["analysis_cache"]["size"] == 0


async def test_management_half_openai() -> None:
    msgs = openai_chat(60, words=5)  # tool outputs too small to be worth clearing: condensation
    result = await api.apply_intelligent_context_management(msgs, max_tokens=4000, model="gpt-4o")
    assert result.risk_level.rank >= ContextRiskLevel.WARNING.rank
    assert result.final_tokens <= 4000 * 0.6
    assert result.tokens_saved == result.original_tokens - result.final_tokens > 0
    assert isinstance(result.processed_messages, list)
    assert result.processed_messages[:2] == msgs[:2]  # system prompt and task verbatim
    assert result.processed_messages[-1] is msgs[-1]
    summary = result.metadata["summary"]["summaries"][0]
    inserted = result.processed_messages[summary["index"]]
    assert inserted["role"] == summary["role"] == "user"
    assert inserted["content"].startswith("<conversation_summary>")


async def test_validate_and_truncate_returns_messages_and_metadata() -> None:
    body = anthropic_body(25)
    messages, meta = await api.validate_and_truncate_context_async(
        body, max_tokens=2500, model="anthropic/claude-sonnet-4-5", format="anthropic"
    )
    assert isinstance(messages, dict) and messages["system"] == body["system"]  # a body in, a body out
    assert meta["final_tokens"] <= 2500
    assert meta["strategy_used"] in {s.value for s in ContextManagementStrategy}


async def test_safe_input_is_returned_as_is() -> None:
    msgs = openai_chat(2)
    result = await api.apply_intelligent_context_management(msgs, model="gpt-4o")
    assert result.processed_messages is msgs
    assert result.strategy_used is ContextManagementStrategy.MONITOR_ONLY


async def test_observe_mode_changes_nothing_but_reports_the_plan() -> None:
    api.set_default_engine(ContextEngine(settings(context_management_mode="observe")))
    msgs = openai_chat(30)
    result = await api.apply_intelligent_context_management(msgs, max_tokens=4000, model="gpt-4o")
    assert result.processed_messages is msgs
    assert result.metadata["observe_only"] is True
    assert result.metadata["planned_strategy"] != "MONITOR_ONLY"
    assert result.metadata["actions"]


async def test_clear_context_caches_makes_the_next_call_recompute() -> None:
    from engine_worker import CountingSummarizer

    summarizer = CountingSummarizer()
    api.set_default_engine(
        ContextEngine(
            settings(context_speculative_condensation=False, condensation_quality_threshold=0.0), summarizer=summarizer
        )
    )
    msgs = openai_chat(60, words=5)
    first = await api.apply_intelligent_context_management(msgs, max_tokens=4000, model="gpt-4o")
    calls = summarizer.calls
    assert calls >= 1 and first.final_tokens < first.original_tokens
    again = await api.apply_intelligent_context_management(msgs, max_tokens=4000, model="gpt-4o")
    assert summarizer.calls == calls  # served from what it kept
    assert [a.split(":")[0] for a in again.metadata["actions"]] == ["reuse"] * len(again.metadata["actions"])
    api.clear_context_caches()
    fresh = await api.apply_intelligent_context_management(msgs, max_tokens=4000, model="gpt-4o")
    assert summarizer.calls == 2 * calls  # recomputed: nothing of the first result was kept
    assert fresh.processed_messages == first.processed_messages
