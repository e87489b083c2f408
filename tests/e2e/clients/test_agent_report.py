"""The session report's measures: the proxy's refusals, the input room, the trim_messages baseline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from litellm_ctx_hook.testing.agent_report import (
    as_chat_text,
    input_room,
    proxy_client_errors,
    trim_baseline,
)
from litellm_ctx_hook.testing.agent_workspace import seed_workspace
from litellm_ctx_hook.testing.provider_upstream import ScriptedUpstream


def test_proxy_client_errors_are_the_4xx_access_lines() -> None:
    log = (
        'INFO:     127.0.0.1:1 - "POST /v1/messages?beta=true HTTP/1.1" 200 OK\n'
        'INFO:     127.0.0.1:1 - "POST /v1/messages?beta=true HTTP/1.1" 400 Bad Request\n'
        'INFO:     127.0.0.1:1 - "GET /health/liveliness HTTP/1.1" 200 OK\n'
    )
    assert proxy_client_errors(log) == ['"POST /v1/messages?beta=true HTTP/1.1" 400']


def test_input_room_is_the_window_less_the_reserved_output() -> None:
    assert input_room({"max_tokens": 32_000}, 72_000) == 40_000
    assert input_room({"max_output_tokens": 1_000}, 11_000) == 10_000
    assert input_room({}, 11_000) == 9_900  # the plugin's default: a tenth of the window, at most 4096
    assert input_room({}, 128_000) == 128_000 - 4096


def test_as_chat_text_reads_the_three_formats() -> None:
    anthropic = {"system": "S", "messages": [{"role": "user", "content": [{"type": "tool_result", "content": "R"}]}]}
    assert as_chat_text(anthropic) == [{"role": "system", "content": "S"}, {"role": "user", "content": "R"}]
    responses = {"instructions": "S", "input": [{"type": "function_call_output", "call_id": "c", "output": "R"}]}
    assert as_chat_text(responses) == [{"role": "system", "content": "S"}, {"role": "tool", "content": "R"}]


def test_trim_baseline_keeps_all_at_full_size_and_only_the_newest_when_small(tmp_path: Path) -> None:
    workspace = seed_workspace(tmp_path / "work", 4, seed=3)
    upstream = ScriptedUpstream(workspace, window=1_000_000, count=lambda body, _e: 1)
    read = {"type": "function", "name": "read", "parameters": {"properties": {"path": {"type": "string"}}}}
    items: list[dict[str, Any]] = [{"type": "message", "role": "user", "content": "task"}]
    for file in workspace.files:  # a session in which every file came back whole
        body = {"instructions": "agent", "input": items, "tools": [read]}
        status, reply = upstream.answer("/responses", body)
        assert status == 200 and isinstance(reply, dict)
        call = reply["output"][0]
        items = [*items, call, {"type": "function_call_output", "call_id": call["call_id"], "output": file.text}]
    upstream.answer("/responses", {"instructions": "agent", "input": items, "tools": [read]})
    assert upstream.finished and upstream.reads_done == 4
    assert trim_baseline(upstream, "task") == 1.0
    newest_only = [items[0], *items[-2:]]
    upstream.answer("/responses", {"instructions": "agent", "input": newest_only, "tools": [read]})
    assert trim_baseline(upstream, "task") == 0.25
