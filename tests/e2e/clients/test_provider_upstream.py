"""The scripted upstream: refuses what the providers refuse, streams tool calls the SDKs read, steers.

No proxy and no agent client here: the official SDKs talk to the upstream directly.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from litellm_ctx_hook.testing.agent_workspace import Workspace, seed_workspace
from litellm_ctx_hook.testing.provider_checks import (
    check_chat,
    check_messages,
    check_responses,
    thinking_signature,
)
from litellm_ctx_hook.testing.provider_upstream import ScriptedUpstream


def chars(body: Any) -> int:
    return len(json.dumps(body)) // 4


READ_TOOL = {
    "name": "Read",
    "description": "Read a file",
    "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}}, "required": ["file_path"]},
}


def anthropic_body(**extra: Any) -> dict[str, Any]:
    thinking = "I will read it."
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1000,
        "thinking": {"type": "enabled", "budget_tokens": 500},
        "system": [{"type": "text", "text": "You are an agent.", "cache_control": {"type": "ephemeral"}}],
        "tools": [READ_TOOL],
        "messages": [
            {"role": "user", "content": "read a.log"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": thinking, "signature": thinking_signature(thinking)},
                    {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"file_path": "/a.log"}},
                ],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "line 1"}]},
        ],
        **extra,
    }


def test_messages_checks_accept_a_valid_tool_loop() -> None:
    assert check_messages(anthropic_body(), 10_000, chars) == ""


def test_messages_checks_refuse_what_anthropic_refuses() -> None:
    body = anthropic_body()
    missing = copy.deepcopy(body)
    missing["messages"][2] = {"role": "user", "content": "go on"}
    assert "without `tool_result`" in check_messages(missing, 10_000, chars)
    orphan = copy.deepcopy(body)
    orphan["messages"][2]["content"].append({"type": "tool_result", "tool_use_id": "toolu_9", "content": "?"})
    assert "unexpected `tool_use_id`" in check_messages(orphan, 10_000, chars)
    cached = copy.deepcopy(body)
    cached["system"] = [{"type": "text", "text": str(i), "cache_control": {"type": "ephemeral"}} for i in range(5)]
    assert "maximum of 4 blocks with cache_control" in check_messages(cached, 10_000, chars)
    no_thinking = copy.deepcopy(body)
    del no_thinking["messages"][1]["content"][0]
    assert "must start with a thinking block" in check_messages(no_thinking, 10_000, chars)
    forged = copy.deepcopy(body)
    forged["messages"][1]["content"][0]["thinking"] = "edited"
    assert "Invalid `signature`" in check_messages(forged, 10_000, chars)
    assert "exceed context limit" in check_messages(body, 1_000 + chars(body) - 1, chars)
    assert check_messages(body, 1_000 + chars(body), chars) == ""


def test_chat_checks_refuse_broken_pairs_and_overflow() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "read", "arguments": "{}"}}
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "read"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "x"},
    ]
    assert check_chat({"messages": messages}, 10_000, chars) == ""
    assert "did not have response messages" in check_chat({"messages": messages[:2]}, 10_000, chars)
    orphan = [messages[0], messages[2]]
    assert "must be a response to a preceeding message" in check_chat({"messages": orphan}, 10_000, chars)
    body = {"messages": messages, "max_tokens": 500}
    assert "maximum context length" in check_chat(body, 500 + chars(body) - 1, chars)


def test_responses_checks_refuse_broken_pairs_and_overflow() -> None:
    items: list[dict[str, Any]] = [
        {"type": "message", "role": "user", "content": "read"},
        {"type": "function_call", "call_id": "c1", "name": "shell", "arguments": "{}"},
        {"type": "function_call_output", "call_id": "c1", "output": "x"},
    ]
    assert check_responses({"input": items}, 10_000, chars) == ""
    assert "No tool output found" in check_responses({"input": items[:2]}, 10_000, chars)
    assert "No tool call found" in check_responses({"input": [items[0], items[2]]}, 10_000, chars)
    body = {"input": items, "max_output_tokens": 100}
    assert "exceeds the context window" in check_responses(body, 100 + chars(body) - 1, chars)


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    return seed_workspace(tmp_path / "work", 2, seed=7)


@pytest.fixture
def upstream(workspace: Workspace) -> Any:
    with ScriptedUpstream(workspace, window=200_000, count=lambda body, _e: chars(body)) as up:
        yield up


def test_steers_through_the_files_over_anthropic_streams(upstream: ScriptedUpstream, workspace: Workspace) -> None:
    client = anthropic.Anthropic(base_url=upstream.url, api_key="k", max_retries=0)
    messages: list[dict[str, Any]] = [{"role": "user", "content": "read the logs"}]
    thinking = {"type": "enabled", "budget_tokens": 1024}
    for index in (0, 0, 1):  # the first result arrives cut: the model asks for the same file again
        with client.messages.stream(
            model="claude-x", max_tokens=2048, thinking=thinking, tools=[READ_TOOL], messages=messages
        ) as stream:
            final = stream.get_final_message()
        kinds = [b.type for b in final.content]
        assert kinds == ["thinking", "tool_use"] and final.stop_reason == "tool_use"
        use = final.content[1]
        assert use.type == "tool_use" and use.input == {"file_path": str(workspace.path_of(index))}
        text = workspace.files[index].text
        sent = text[: len(text) // 2] if len(messages) == 1 else text
        messages += [
            {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in final.content]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": sent}]},
        ]
    answer = client.messages.create(
        model="claude-x", max_tokens=2048, thinking=thinking, tools=[READ_TOOL], messages=messages
    )
    assert answer.content[0].type == "text" and workspace.files[0].needle_id in answer.content[0].text
    assert upstream.finished and upstream.reads_done == 2
    assert upstream.newest_cut == 1 and upstream.rereads == 1 and not upstream.rejections


def test_refuses_with_the_provider_error_shape(upstream: ScriptedUpstream) -> None:
    client = anthropic.Anthropic(base_url=upstream.url, api_key="k", max_retries=0)
    upstream.window = 10
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.messages.create(model="claude-x", max_tokens=100, messages=[{"role": "user", "content": "hi"}])
    assert "exceed context limit" in str(caught.value)
    assert len(upstream.rejections) == 1


def test_chat_and_responses_streams_carry_the_tool_call(upstream: ScriptedUpstream, workspace: Workspace) -> None:
    client = openai.OpenAI(base_url=upstream.url + "/v1", api_key="k", max_retries=0)
    read = {
        "type": "function",
        "function": {
            "name": "read",
            "parameters": {"type": "object", "properties": {"filePath": {"type": "string"}}, "required": ["filePath"]},
        },
    }
    chunks = list(
        client.chat.completions.create(
            model="gpt-x",
            messages=[{"role": "user", "content": "read"}],
            tools=[read],
            stream=True,  # type: ignore[list-item]
        )
    )
    calls = [tc for c in chunks for ch in c.choices for tc in (ch.delta.tool_calls or [])]
    assert calls[0].function and calls[0].function.name == "read"
    arguments = "".join(tc.function.arguments or "" for tc in calls if tc.function)
    assert json.loads(arguments) == {"filePath": str(workspace.path_of(0))}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"

    shell = {
        "type": "function",
        "name": "exec_command",
        "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}}, "required": ["cmd"]},
    }
    events = list(client.responses.create(model="gpt-x", input="read", tools=[shell], stream=True))  # type: ignore[list-item]
    done = [e for e in events if e.type == "response.completed"]
    item = done[0].response.output[0]
    assert item.type == "function_call" and item.name == "exec_command"
    # no result came back for the chat turn's call: the first file is still the one to read
    assert json.loads(item.arguments)["cmd"] == f"cat {workspace.path_of(0)}"
