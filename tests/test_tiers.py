"""Tier 3 (truncation) when the pinned turns alone are too large: middle cuts, several if one is
not enough; the largest older message first, a summary condensed again after them, the newest
turn last."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from support import settings

from litellm_ctx_hook.adapters import adapter_for
from litellm_ctx_hook.analysis.salience import fact_retention
from litellm_ctx_hook.analysis.tokenizers import Family
from litellm_ctx_hook.condensing.local.extractive import condense_summary
from litellm_ctx_hook.conversation import Format, Message
from litellm_ctx_hook.engine.engine import ContextEngine
from litellm_ctx_hook.errors import ContextWindowExceededError
from litellm_ctx_hook.planning import actions
from litellm_ctx_hook.planning.atoms import group_atoms
from litellm_ctx_hook.planning.edits import CUT_MARK, CUT_MIN_KEEP, cut_middle, summary_of, summary_text
from litellm_ctx_hook.planning.tiers import Work, cut_pinned

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


# -- cut_pinned: which message gives way ----------------------------------------------------------
def _log(tag: str, lines: int) -> str:
    if not lines:
        return f"{tag}: empty"
    return "\n".join(f"2026-11-0{i % 9 + 1} INFO worker-{i % 7} batch={i * 37} {tag} status=ok" for i in range(lines))


def _summary(n: int) -> str:
    lines = [f"[tool result Read] /srv/app/module_{i}.py defines handler_{i} (ticket OPS-{4100 + i})" for i in range(n)]
    return summary_text("\n".join(lines), 2 * n)


def _cut_case(
    excess_share: float, summary_lines: int, older_lines: int, newest_lines: int = 120
) -> tuple[Work, list[Message], int, Any]:
    """A task, a summary of earlier turns, an older read in the pinned tail, the newest read."""
    body = {
        "model": MODEL,
        "messages": [
            {"role": "system", "content": "You are a coding agent."},
            {"role": "user", "content": "Find why the worker stalls."},
            {"role": "user", "content": _summary(summary_lines)},
            {"role": "assistant", "content": None, "tool_calls": [_tool_call("r1")]},
            {"role": "tool", "tool_call_id": "r1", "content": _log("older", older_lines)},
            {"role": "assistant", "content": None, "tool_calls": [_tool_call("r2")]},
            {"role": "tool", "tool_call_id": "r2", "content": _log("newest", newest_lines)},
        ],
    }
    conv = adapter_for(Format.OPENAI).parse(body)
    counter = ContextEngine(settings()).counter

    def measure(messages: Any) -> Any:
        return counter.count(conv.with_messages(messages), MODEL)

    total = measure(conv.messages).total
    limit = total - int(measure(conv.messages).messages[2] * excess_share)
    work = Work(list(conv.messages), list(range(len(conv.messages))))
    return work, list(conv.messages), limit, measure


def _tool_call(call_id: str) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": "Read", "arguments": "{}"}}


def _count_text(text: str) -> int:
    return ContextEngine(settings()).counter.count_text(text, Family.O200K)


def _condense(summary: str, budget: int) -> str:
    return condense_summary(summary, budget, _count_text)


def test_the_largest_older_message_gives_way_before_the_summary_and_the_newest_turn() -> None:
    work, original, limit, measure = _cut_case(0.3, summary_lines=20, older_lines=200)
    cut_pinned(original, work, limit, measure, _count_text, _condense)
    assert measure(work.messages).total <= limit
    assert work.actions == [actions.CUT]
    assert CUT_MARK.split("{")[0] in work.messages[4].parts[0].text  # the older read lost its middle
    assert work.messages[2] is original[2] and work.messages[6] is original[6]  # summary, newest: as they were


def test_a_summary_gives_way_condensed_again_with_its_frame_and_facts_not_cut() -> None:
    work, original, limit, measure = _cut_case(0.4, summary_lines=40, older_lines=0)
    before = summary_of(original[2].parts[0].text)
    assert before is not None
    cut_pinned(original, work, limit, measure, _count_text, _condense)
    assert measure(work.messages).total <= limit
    assert work.actions == [actions.SHORTEN] and not work.cut  # a summary is no pinned message
    text = work.messages[2].parts[0].text
    after = summary_of(text)
    assert after is not None and "tokens cut to fit" not in text
    assert after[1] == before[1]  # it still says how many messages it stands for
    assert work.messages[1] is original[1] and work.messages[6] is original[6]  # the task, the newest read
    # it keeps at least the facts a cut of its middle by as much would have kept
    excess = measure(original).total - limit
    cut = cut_middle(original[2], excess, _count_text)
    assert cut is not None
    assert fact_retention(before[0], text) >= fact_retention(before[0], cut.parts[0].text)


def test_a_summary_is_condensed_then_cut_to_its_floor_before_the_newest_turn_gives_way() -> None:
    work, original, limit, measure = _cut_case(1.0, summary_lines=40, older_lines=0, newest_lines=30)
    cut_pinned(original, work, limit, measure, _count_text, _condense)
    assert measure(work.messages).total <= limit
    assert work.actions == [actions.SHORTEN, actions.CUT, actions.CUT]  # the newest gave way last
    assert measure(work.messages).messages[2] < 2 * CUT_MIN_KEEP
    assert work.cut == {6} and work.messages[1] is original[1]
