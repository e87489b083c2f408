"""The analysis cache: a repeated request skips the count, and its answer is about this request."""

from __future__ import annotations

import asyncio
import copy

from support import openai_chat, settings

from litellm_ctx_hook.conversation import Format
from litellm_ctx_hook.engine.engine import ContextEngine

MODEL = "gpt-4o"


def test_a_repeated_request_is_a_hit_and_its_analysis_holds_the_new_request() -> None:
    engine = ContextEngine(settings())
    first = {"model": MODEL, "messages": openai_chat(3)}
    second = copy.deepcopy(first)
    a1 = engine.analyze(first, Format.OPENAI, MODEL)
    a2 = engine.analyze(second, Format.OPENAI, MODEL)
    assert engine.stats.analysis_hits == 1 and engine.stats.analysis_misses == 1
    assert a2.count == a1.count and a2.result.risk_level is a1.result.risk_level
    assert a2.conversation.body is second
    assert all(m.raw is raw for m, raw in zip(a2.conversation.messages, second["messages"], strict=True))


def test_the_same_messages_with_other_parameters_keep_their_own_parameters() -> None:
    engine = ContextEngine(settings())
    messages = openai_chat(12, words=200)
    limit = engine.analyze({"model": MODEL, "messages": messages}, Format.OPENAI, MODEL).count.total // 2
    outs = [
        asyncio.run(
            engine.manage(
                {"model": MODEL, "messages": copy.deepcopy(messages), "temperature": t},
                Format.OPENAI,
                MODEL,
                limit=limit,
            )
        )
        for t in (0.1, 0.9)
    ]
    assert all(o.changed for o in outs)
    assert [o.body["temperature"] for o in outs] == [0.1, 0.9]
    assert outs[0].body["messages"] == outs[1].body["messages"]
