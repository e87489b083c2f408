"""The per-turn cost benchmark's own logic: its sessions, how it classes a request, what it reports."""

from __future__ import annotations

import json

import pytest

from bench import evaldata
from bench.turn_cost import (
    KINDS,
    MARK,
    Served,
    SessionRun,
    claude_code_session,
    deep_size,
    kind_of,
    real_sessions,
    requests_of,
    run_session,
    summary,
    table,
)
from litellm_ctx_hook.adapters import adapter_for
from litellm_ctx_hook.conversation import Format


def test_the_generated_session_is_a_valid_growing_messages_session_whose_cache_marker_moves() -> None:
    body = claude_code_session(outputs=6, seed=1, tokens=500)
    requests = [json.loads(r) for r in requests_of(body)]
    assert len(requests) == 7  # before each assistant message but the first
    for k, req in enumerate(requests):
        adapter_for(Format.ANTHROPIC).parse(req)  # valid /v1/messages
        messages = req["messages"]
        assert messages[-1]["role"] == "user"
        marked = [(i, j) for i, m in enumerate(messages) for j, b in enumerate(m["content"]) if b.get("cache_control")]
        assert marked == [(len(messages) - 1, len(messages[-1]["content"]) - 1)]  # only on the last block
        if k:
            previous = requests[k - 1]["messages"]
            assert messages[: len(previous) - 1] == previous[:-1]  # the previous turn, its marker moved on
    assert body["system"][-1]["cache_control"] == MARK
    assert claude_code_session(outputs=6, seed=1, tokens=500) == body  # deterministic
    assert claude_code_session(outputs=6, seed=2, tokens=500)["messages"][0] != body["messages"][0]


@pytest.mark.parametrize(
    ("report", "from_memo", "kind"),
    [
        ({"actions": []}, False, "nothing"),
        ({"actions": ["reuse:18"], "cache": "hit"}, True, "repeat turn"),
        ({"actions": []}, True, "repeat turn"),
        ({"actions": ["clear:12"], "cache": "none"}, False, "clearing"),
        ({"actions": ["reuse:18"], "cache": "hit"}, False, "condensation from cache"),
        ({"actions": ["extend:aggressive:extractive:30"], "cache": "miss"}, False, "fresh condensation"),
        ({"actions": ["condense:light:model:10"], "cache": "hit"}, False, "condensation from cache"),
        ({"actions": ["clear:3", "truncate:4"], "cache": "none"}, False, "truncation"),
    ],
)
def test_each_request_is_classed_by_what_the_plugin_did(report: dict[str, object], from_memo: bool, kind: str) -> None:
    assert kind_of(report, from_memo) == kind


async def test_a_long_session_through_the_hook_is_mostly_repeat_turns_and_the_memo_holds_less_than_a_copy() -> None:
    requests = requests_of(claude_code_session(outputs=20, seed=5, tokens=1500))
    run = await run_session("small", requests, 32_000, context_speculative_condensation=False)
    kinds = [s.kind for s in run.served]
    assert len(kinds) == len(requests)
    assert set(kinds) <= set(KINDS)
    assert kinds.count("repeat turn") > len(kinds) / 2
    assert "clearing" in kinds  # the window is small enough to need managing
    assert [s.tokens for s in run.served] == sorted(s.tokens for s in run.served)  # the client's growing history
    assert 0 < run.memo_bytes < run.copy_bytes
    rows = summary([run])
    assert rows["all requests"]["requests"] == len(kinds)
    assert rows["repeat turn"]["p50_ms"] <= rows["repeat turn"]["p99_ms"] <= rows["repeat turn"]["max_ms"]
    assert "| repeat turn |" in table("t", [run])


def test_summary_percentiles_and_deep_size() -> None:
    run = SessionRun("s", 1000, [Served("repeat turn", x / 1000, 10) for x in range(1, 101)], 10, 20)
    row = summary([run])["repeat turn"]
    assert (row["requests"], row["p50_ms"], row["p99_ms"], row["max_ms"]) == (100, 51.0, 100.0, 100.0)
    shared = "x" * 1000
    assert deep_size([shared, shared]) < deep_size([shared, "y" * 1000])  # each object once


@pytest.mark.skipif(not evaldata.CLAUDE.exists(), reason="../shared/evaldata not present")
def test_the_real_sessions_are_replayed_request_by_request() -> None:
    sessions = real_sessions()
    assert sessions
    for _, requests in sessions:
        for raw in requests[:3]:
            body = json.loads(raw)
            assert body["messages"][-1]["role"] != "assistant" or len(body["messages"]) == 1
