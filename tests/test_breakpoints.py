"""Prompt-cache breakpoints on ``/v1/messages`` after management (adapters.anthropic_messages.fit_breakpoints)."""

from __future__ import annotations

import copy
import itertools
import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from support import anthropic_body, settings

from litellm_ctx_hook.adapters.anthropic_messages import MAX_BREAKPOINTS, fit_breakpoints
from litellm_ctx_hook.conversation import Format
from litellm_ctx_hook.engine.engine import ContextEngine

CC = {"type": "ephemeral"}


def marks(body: Any) -> list[tuple[str, int, int]]:
    out = [
        ("system", 0, j) for j, b in enumerate(body.get("system") or []) if isinstance(b, dict) and "cache_control" in b
    ]
    out += [("tools", 0, j) for j, t in enumerate(body.get("tools") or []) if "cache_control" in t]
    for i, m in enumerate(body["messages"]):
        if isinstance(m["content"], list):
            out += [("messages", i, j) for j, b in enumerate(m["content"]) if "cache_control" in b]
    return out


def test_a_client_without_breakpoints_gets_none() -> None:
    body = anthropic_body(6)
    assert fit_breakpoints(body, 4) is body


def test_ours_goes_at_the_end_of_the_prefix_and_the_clients_stay() -> None:
    body = anthropic_body(6)
    body["messages"][-1] = {"role": "user", "content": [{"type": "text", "text": "Go on.", "cache_control": CC}]}
    before = copy.deepcopy(body)
    out = fit_breakpoints(body, 4)
    assert body == before  # never changes its input
    assert marks(out) == [("messages", 4, 0), ("messages", len(body["messages"]) - 1, 0)]
    assert out["messages"][4]["content"][0]["cache_control"] == CC
    assert out["messages"][5:] == body["messages"][5:] and out["messages"][:4] == body["messages"][:4]


def test_ours_skips_thinking_and_takes_the_clients_ttl() -> None:
    body = anthropic_body(6)
    hour = {"type": "ephemeral", "ttl": "1h"}
    body["system"] = [{"type": "text", "text": "You are a coding agent.", "cache_control": hour}]
    body["messages"][-1] = {"role": "user", "content": [{"type": "text", "text": "Go on.", "cache_control": hour}]}
    out = fit_breakpoints(body, 3)  # an assistant message: thinking, then tool_use
    assert out["messages"][3]["content"][1]["cache_control"] == hour
    assert "cache_control" not in out["messages"][3]["content"][0]


blocks = st.lists(st.booleans(), min_size=1, max_size=3)  # per block: marked by the client?


@given(
    st.integers(min_value=0, max_value=2),  # the system prompt and tools leave ours a place
    st.integers(min_value=0, max_value=1),
    st.lists(blocks, min_size=2, max_size=12),
    st.data(),
)
def test_at_most_four_breakpoints_and_the_prefix_depends_on_the_prefix_alone(
    system_marks: int, tool_marks: int, messages: list[list[bool]], data: st.DataObject
) -> None:
    def body_of(msgs: list[list[bool]]) -> dict[str, Any]:
        return {
            "system": [
                {"type": "text", "text": f"s{j}", **({"cache_control": CC} if j < system_marks else {})}
                for j in range(3)
            ],
            "tools": [{"name": f"t{j}", **({"cache_control": CC} if j < tool_marks else {})} for j in range(2)],
            "messages": [
                {
                    "role": "user" if i % 2 == 0 else "assistant",
                    "content": [
                        {"type": "text", "text": f"m{i}.{j}", **({"cache_control": CC} if m else {})}
                        for j, m in enumerate(bs)
                    ],
                }
                for i, bs in enumerate(msgs)
            ],
        }

    end = data.draw(st.integers(min_value=0, max_value=len(messages) - 1))
    body = body_of(messages)
    out = fit_breakpoints(body, end)
    found = marks(out)
    if found or marks(body):
        assert len(found) <= MAX_BREAKPOINTS
        assert ("messages", end, len(messages[end]) - 1) in found  # ours, at the end of the prefix
        assert out["system"] == body["system"] and out["tools"] == body["tools"]
        assert all(m in marks(body) or m[1] == end for m in found)  # no other mark of ours
    assert fit_breakpoints(out, end) == out  # sent again, it keeps its bytes
    tail = data.draw(st.lists(blocks, min_size=0, max_size=6))
    grown = body_of(messages[: end + 1] + tail)
    if marks(grown) and marks(body):  # a client that uses prompt caching on both turns
        assert fit_breakpoints(grown, end)["messages"][: end + 1] == out["messages"][: end + 1]


async def test_a_managed_request_reads_its_prefix_on_the_next_turns() -> None:
    engine = ContextEngine(settings(context_speculative_condensation=False))

    session = anthropic_body(40, words=120)

    def turn(n: int) -> dict[str, Any]:  # the session up to its n-th message, a tool result
        body = {**session, "messages": copy.deepcopy(session["messages"][:n])}
        last = body["messages"][-1]["content"]
        last[-1] = {**last[-1], "cache_control": CC}
        body["system"] = [{"type": "text", "text": "You are a coding agent.", "cache_control": CC}]
        return body

    outs = [await engine.manage(turn(n), Format.ANTHROPIC, "claude-sonnet-4-5", limit=6_000) for n in range(41, 81, 2)]
    managed = [o for o in outs if o.changed]
    assert managed
    for o in managed:
        found = marks(o.body)
        assert len(found) <= MAX_BREAKPOINTS
        assert ("system", 0, 0) in found and found[-1][1] == len(o.body["messages"]) - 1  # the client's stay
        assert len(found) == 3  # and one at the end of the managed prefix
    assert any(not o.prefix_changed for o in managed[1:])
    for prev, cur in itertools.pairwise(managed):
        if not cur.prefix_changed:  # the same prefix, breakpoint included, byte for byte
            end = marks(prev.body)[1][1]
            assert json.dumps(cur.body["messages"][: end + 1]) == json.dumps(prev.body["messages"][: end + 1])
