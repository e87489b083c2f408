"""The prescreen counts a request from counts remembered per raw message: always the full count."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from strategies import anthropic_conversation, openai_conversation, responses_conversation
from support import openai_chat, settings

from litellm_ctx_hook.adapters import adapter_for
from litellm_ctx_hook.conversation import Format
from litellm_ctx_hook.counting import TokenCounter
from litellm_ctx_hook.engine import ContextEngine
from litellm_ctx_hook.errors import InvalidRequestError
from litellm_ctx_hook.prescreen import MAX_NEW, MESSAGES_KEY, prescreen, raw_key, remember
from litellm_ctx_hook.risk import ContextRiskLevel

MODELS = {Format.OPENAI: "gpt-4o", Format.ANTHROPIC: "anthropic/claude-opus-4-6", Format.RESPONSES: "gpt-4.1"}
bodies = st.one_of(
    openai_conversation().map(lambda b: (Format.OPENAI, b)),
    anthropic_conversation().map(lambda b: (Format.ANTHROPIC, b)),
    responses_conversation().map(lambda b: (Format.RESPONSES, b)),
)


@hsettings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies, st.integers(0, 3))
def test_the_count_is_the_full_count_cold_warm_and_grown(case: tuple[Format, dict[str, Any]], drop: int) -> None:
    fmt, body = case
    model = MODELS[fmt]
    full = TokenCounter(settings())
    counter = TokenCounter(settings())
    items = body.get(MESSAGES_KEY[fmt])
    if not isinstance(items, list):  # a Responses string input: not for the prescreen
        assert prescreen(body, fmt, model, counter, 10**9) is None
        return
    want = full.count(adapter_for(fmt).parse(body), model)
    earlier = {**body, MESSAGES_KEY[fmt]: items[: max(0, len(items) - drop)]}
    first = prescreen(earlier, fmt, model, counter, 10**9)  # cold: a short conversation is counted
    if len(earlier[MESSAGES_KEY[fmt]]) > MAX_NEW:
        assert first is None  # a long one is not (nothing known about it): the full analysis remembers it
        remember(earlier, fmt, model, counter, full.count(adapter_for(fmt).parse(earlier), model).messages)
    else:
        assert first == full.count(adapter_for(fmt).parse(earlier), model)
    grown = prescreen(copy.deepcopy(body), fmt, model, counter, 10**9)  # warm, with up to three new messages
    assert grown == want
    assert prescreen(copy.deepcopy(body), fmt, model, counter, 10**9) == want  # all of it remembered


def test_it_stops_as_soon_as_the_messages_it_knows_are_not_safe() -> None:
    counter = TokenCounter(settings())
    body = {"model": "gpt-4o", "messages": openai_chat(4)}
    assert prescreen(body, Format.OPENAI, "gpt-4o", counter, 10**9) is None  # 18 messages never seen
    full = counter.count(adapter_for(Format.OPENAI).parse(body), "gpt-4o")
    remember(body, Format.OPENAI, "gpt-4o", counter, full.messages)
    grown = {**body, "messages": [*body["messages"], {"role": "user", "content": "and now?"}]}
    known = sum(full.messages)
    assert prescreen(grown, Format.OPENAI, "gpt-4o", counter, known) is None  # the known ones reach it
    assert prescreen(grown, Format.OPENAI, "gpt-4o", counter, known + 1) is not None


def test_raw_keys_see_every_field_and_order_only_misses() -> None:
    a = {"role": "user", "content": "hi"}
    assert raw_key(a) == raw_key(dict(a)) != raw_key({"role": "user", "content": "hi!"})
    assert raw_key(a) != raw_key({"role": "user", "content": "hi", "name": "bob"})
    call = {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "function": {"name": "f"}}]}
    assert raw_key(call) != raw_key({**call, "tool_calls": [{"id": "c2", "function": {"name": "f"}}]})
    blocks = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]}
    assert raw_key(blocks) != raw_key({**blocks, "content": [{**blocks["content"][0], "content": "ok!"}]})
    assert raw_key(blocks) != raw_key({**blocks, "role": "assistant"})
    assert raw_key(blocks) != raw_key({**blocks, "content": [{"type": "text", "text": "ok"}]})
    assert raw_key("not a message") is None and raw_key({"content": object()}) is None
    assert raw_key({"role": "user", "content": [object()]}) is None


@pytest.mark.parametrize(
    "body",
    [
        {"model": "gpt-4o", "messages": "not a list"},
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}, 42]},
        {"model": "gpt-4o", "messages": [{"role": "wizard", "content": "x"}]},
    ],
)
def test_malformed_requests_are_left_to_the_full_analysis(body: dict[str, Any]) -> None:
    engine = ContextEngine(settings())
    assert prescreen(body, Format.OPENAI, "gpt-4o", engine.counter, 10**9) is None
    with pytest.raises(InvalidRequestError):
        asyncio.run(engine.manage(body, Format.OPENAI, "gpt-4o"))


def test_a_safe_request_is_reported_as_the_full_analysis_reports_it() -> None:
    earlier = {"model": "gpt-4o", "messages": openai_chat(3)}
    body = {"model": "gpt-4o", "messages": [*openai_chat(3), {"role": "user", "content": "And the tests?"}]}
    quick_engine, full_engine = ContextEngine(settings()), ContextEngine(settings())
    asyncio.run(quick_engine.manage(earlier, Format.OPENAI, "gpt-4o"))  # 14 messages, new: analysed in full
    assert quick_engine.stats.analysis_misses == 1
    out = asyncio.run(quick_engine.manage(body, Format.OPENAI, "gpt-4o"))  # the next turn: prescreened
    a = full_engine.analyze(body, Format.OPENAI, "gpt-4o")
    assert a.result.risk_level is ContextRiskLevel.SAFE and quick_engine.stats.analysis_misses == 1
    assert out.body is body and not out.changed and out.risk is ContextRiskLevel.SAFE
    assert out.tokens_before == out.tokens_after == a.count.total
    expected = {**a.result.metadata, "risk_level": "SAFE", "tokens_before": a.count.total, "limit": a.budget.limit}
    assert {k: v for k, v in out.metadata.items() if k not in ("processing_ms", "tokens_after")} == expected


def test_requests_above_safe_are_analysed_in_full() -> None:
    engine = ContextEngine(settings())
    body = {"model": "gpt-4o", "messages": openai_chat(12, words=200)}
    limit = engine.analyze(body, Format.OPENAI, "gpt-4o").count.total * 100 // 75  # CAUTION
    misses = engine.stats.analysis_misses
    out = asyncio.run(engine.manage(copy.deepcopy(body), Format.OPENAI, "gpt-4o", limit=limit))
    assert out.risk is ContextRiskLevel.CAUTION and engine.stats.analysis_misses == misses + 1


def test_a_conversation_seen_above_safe_skips_the_prescreen_on_its_next_turns(monkeypatch: pytest.MonkeyPatch) -> None:
    import litellm_ctx_hook.prescreen as module

    engine = ContextEngine(settings())
    body = {"model": "gpt-4o", "messages": openai_chat(12, words=200)}
    limit = engine.analyze(body, Format.OPENAI, "gpt-4o").count.total * 100 // 75  # CAUTION
    asyncio.run(engine.manage(copy.deepcopy(body), Format.OPENAI, "gpt-4o", limit=limit))
    keyed = 0
    real = module.raw_key

    def counting(raw: Any) -> Any:
        nonlocal keyed
        keyed += 1
        return real(raw)

    monkeypatch.setattr(module, "raw_key", counting)
    grown = {**body, "messages": [*body["messages"], {"role": "user", "content": "next?"}]}
    out = asyncio.run(engine.manage(grown, Format.OPENAI, "gpt-4o", limit=limit))
    assert out.risk is ContextRiskLevel.CAUTION
    # Only the messages that identify the conversation were keyed: by the prescreen, then when the
    # full analysis marked it again (50 messages in all).
    assert keyed == 2 * module.HEAD
