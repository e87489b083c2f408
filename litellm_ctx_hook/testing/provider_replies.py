"""Replies that call a tool, in the three APIs' shapes, whole or as server-sent events (pure).

Complements :mod:`~litellm_ctx_hook.testing.fake_replies` (text replies): an Anthropic ``tool_use``
(after a signed thinking block when the request enabled thinking), an OpenAI chat ``tool_calls``
message, a Responses ``function_call`` item; each with usage, and the stream each provider sends
for it (LiteLLM reads and converts them).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .fake_replies import model_of, prompt_tokens_for, response_envelope, sse
from .provider_checks import thinking_signature


@dataclass(frozen=True, slots=True)
class ToolCall:
    call_id: str
    name: str
    arguments: Mapping[str, Any]
    thinking: str = ""  # the reasoning shown before it (Anthropic, when thinking is enabled)

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments)


# --- Anthropic Messages -----------------------------------------------------------------------------


def anthropic_blocks(call: ToolCall) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if call.thinking:
        blocks.append({"type": "thinking", "thinking": call.thinking, "signature": thinking_signature(call.thinking)})
    blocks.append({"type": "tool_use", "id": call.call_id, "name": call.name, "input": dict(call.arguments)})
    return blocks


def anthropic_tool_message(body: Mapping[str, Any], call: ToolCall, prompt_tokens: int) -> dict[str, Any]:
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model_of(body, "claude-fake"),
        "content": anthropic_blocks(call),
        "stop_reason": "tool_use",
        "stop_sequence": None,
        "usage": {"input_tokens": prompt_tokens, "output_tokens": prompt_tokens_for(len(call.arguments_json))},
    }


def anthropic_tool_stream(body: Mapping[str, Any], call: ToolCall, prompt_tokens: int) -> Iterator[bytes]:
    message = anthropic_tool_message(body, call, prompt_tokens)
    start = {
        **message,
        "content": [],
        "stop_reason": None,
        "usage": {"input_tokens": prompt_tokens, "output_tokens": 1},
    }
    yield sse({"type": "message_start", "message": start}, "message_start")
    for index, block in enumerate(message["content"]):
        if block["type"] == "thinking":
            yield sse(
                {"type": "content_block_start", "index": index, "content_block": {"type": "thinking", "thinking": ""}},
                "content_block_start",
            )
            delta = {"type": "thinking_delta", "thinking": block["thinking"]}
            yield sse({"type": "content_block_delta", "index": index, "delta": delta}, "content_block_delta")
            delta = {"type": "signature_delta", "signature": block["signature"]}
            yield sse({"type": "content_block_delta", "index": index, "delta": delta}, "content_block_delta")
        else:
            opened = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            yield sse({"type": "content_block_start", "index": index, "content_block": opened}, "content_block_start")
            delta = {"type": "input_json_delta", "partial_json": call.arguments_json}
            yield sse({"type": "content_block_delta", "index": index, "delta": delta}, "content_block_delta")
        yield sse({"type": "content_block_stop", "index": index}, "content_block_stop")
    yield sse(
        {
            "type": "message_delta",
            "delta": {"stop_reason": "tool_use", "stop_sequence": None},
            "usage": {"output_tokens": message["usage"]["output_tokens"]},
        },
        "message_delta",
    )
    yield sse({"type": "message_stop"}, "message_stop")


# --- OpenAI chat completions ------------------------------------------------------------------------


def chat_tool_completion(body: Mapping[str, Any], call: ToolCall, prompt_tokens: int) -> dict[str, Any]:
    completion_tokens = prompt_tokens_for(len(call.arguments_json))
    tool_call = {
        "id": call.call_id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments_json},
    }
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_of(body, "fake-model"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": None, "tool_calls": [tool_call]},
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def chat_tool_stream(body: Mapping[str, Any], call: ToolCall, prompt_tokens: int) -> Iterator[bytes]:
    whole = chat_tool_completion(body, call, prompt_tokens)
    base = {k: whole[k] for k in ("id", "object", "created", "model")} | {"object": "chat.completion.chunk"}

    def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
        return sse({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

    opened = {"index": 0, "id": call.call_id, "type": "function", "function": {"name": call.name, "arguments": ""}}
    yield chunk({"role": "assistant", "content": None, "tool_calls": [opened]}, None)
    yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": call.arguments_json}}]}, None)
    yield chunk({}, "tool_calls")
    options = body.get("stream_options")
    if isinstance(options, Mapping) and options.get("include_usage"):
        yield sse({**base, "choices": [], "usage": whole["usage"]})
    yield b"data: [DONE]\n\n"


# --- OpenAI Responses -------------------------------------------------------------------------------


def _response(body: Mapping[str, Any], output: list[dict[str, Any]], prompt_tokens: int, status: str) -> dict[str, Any]:
    output_tokens = sum(prompt_tokens_for(len(str(o.get("arguments", "")))) for o in output) or 1
    return response_envelope(body, output, prompt_tokens, output_tokens, status, parallel_tool_calls=False)


def responses_call_item(call: ToolCall) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": f"fc_{call.call_id}",
        "call_id": call.call_id,
        "name": call.name,
        "arguments": call.arguments_json,
        "status": "completed",
    }


def responses_tool_object(body: Mapping[str, Any], call: ToolCall, prompt_tokens: int) -> dict[str, Any]:
    return _response(body, [responses_call_item(call)], prompt_tokens, "completed")


def responses_tool_stream(body: Mapping[str, Any], call: ToolCall, prompt_tokens: int) -> Iterator[bytes]:
    final = responses_tool_object(body, call, prompt_tokens)
    pending = {**_response(body, [], prompt_tokens, "in_progress"), "id": final["id"]}
    item = responses_call_item(call)
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": pending},
        {"type": "response.in_progress", "response": pending},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {**item, "arguments": "", "status": "in_progress"},
        },
        {
            "type": "response.function_call_arguments.delta",
            "item_id": item["id"],
            "output_index": 0,
            "delta": call.arguments_json,
        },
        {
            "type": "response.function_call_arguments.done",
            "item_id": item["id"],
            "output_index": 0,
            "arguments": call.arguments_json,
        },
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": final},
    ]
    for seq, event in enumerate(events):
        yield sse({**event, "sequence_number": seq}, str(event["type"]))
