"""Tier 3 (truncation) when the pinned turns alone are too large: middle cuts, several if one is not enough."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from support import settings

from litellm_ctx_hook.adapters import adapter_for
from litellm_ctx_hook.conversation import Format
from litellm_ctx_hook.engine.engine import ContextEngine
from litellm_ctx_hook.errors import ContextWindowExceededError
from litellm_ctx_hook.planning.atoms import group_atoms
from litellm_ctx_hook.planning.edits import CUT_MIN_KEEP

MODEL = "gpt-4o"


def _result(tag: str) -> str:
    return json.dumps([{"flight_number": f"{tag}{i:03d}", "price": 100 + i, "status": "available"} for i in range(40)])


def _call(*days: int) -> dict[str, Any]:
    calls = [
        {
            "id": f"c{i}",
            "type": "function",
            "function": {"name": "search_direct_flight", "arguments": json.dumps({"date": f"2024-05-2{i}"})},
        }
        for i in days
    ]
    return {"role": "assistant", "content": None, "tool_calls": calls}


def _body() -> dict[str, Any]:
    """Two parallel tool results, each about 1,000 tokens, in the newest atom: nothing but cuts
    can shrink them."""
    return {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are an airline agent."},
            {"role": "user", "content": "Find me a flight to Seattle."},
            _call(1, 2),
            {"role": "tool", "tool_call_id": "c1", "content": _result("HAT")},
            {"role": "tool", "tool_call_id": "c2", "content": _result("SKY")},
        ],
    }


def _later_body() -> dict[str, Any]:
    """The same results in two atoms, followed by two more turns: all four atoms are the pinned tail."""
    return {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are an airline agent."},
            {"role": "user", "content": "Find me a flight to Seattle."},
            _call(1),
            {"role": "tool", "tool_call_id": "c1", "content": _result("HAT")},
            _call(2),
            {"role": "tool", "tool_call_id": "c2", "content": _result("SKY")},
            {"role": "assistant", "content": "Here are the flights."},
            {"role": "user", "content": "Book the first one."},
        ],
    }


def _manage(engine: ContextEngine, limit: int) -> Any:
    return asyncio.run(engine.manage(_body(), Format.OPENAI, MODEL, limit=limit))


def test_the_excess_is_shared_between_pinned_messages_when_none_can_lose_it_alone() -> None:
    engine = ContextEngine(settings())
    analysis = engine.analyze(_body(), Format.OPENAI, MODEL)
    total = analysis.count.total
    per_result = engine.counter.count_text(_result("HAT"), analysis.count.family)
    limit = total - int(per_result * 1.5)  # more than one result can lose, less than both
    out = _manage(engine, limit)
    assert out.tokens_after <= limit
    assert out.metadata["actions"].count("cut:1") == 2
    messages = out.body["messages"]
    results = [m["content"] for m in messages if m["role"] == "tool"]
    assert len(results) == 2 and all("tokens cut to fit the context window" in r for r in results)
    assert results[0].startswith(_result("HAT")[:40]) and results[1].endswith(_result("SKY")[-40:])
    conv = adapter_for(Format.OPENAI).parse(out.body)
    atoms = group_atoms(conv.messages)
    assert not atoms.orphan_results and not atoms.unanswered_calls
    assert messages[0]["content"] == "You are an airline agent."


def test_a_pinned_tail_too_large_for_the_limit_has_its_older_atoms_condensed_not_cut() -> None:
    engine = ContextEngine(settings())
    body = _later_body()
    analysis = engine.analyze(body, Format.OPENAI, MODEL)
    per_result = engine.counter.count_text(_result("HAT"), analysis.count.family)
    limit = analysis.count.total - int(per_result * 1.5)
    out = asyncio.run(engine.manage(body, Format.OPENAI, MODEL, limit=limit))
    assert out.tokens_after <= limit
    actions = out.metadata["actions"]
    assert "cut:1" not in actions and any(a.startswith("condense") for a in actions), actions
    messages = out.body["messages"]
    assert messages[0] == body["messages"][0] and messages[-2:] == body["messages"][-2:]
    assert not [m for m in messages if m["role"] == "tool"]  # both calls and results were condensed


def test_a_request_that_cannot_fit_even_cut_down_is_rejected_with_its_counts() -> None:
    engine = ContextEngine(settings())
    with pytest.raises(ContextWindowExceededError) as err:
        _manage(engine, 2 * CUT_MIN_KEEP)
    assert err.value.limit == 2 * CUT_MIN_KEEP and err.value.tokens > err.value.limit
