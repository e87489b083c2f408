"""What the fake upstream answers: deterministic replies in the three APIs' shapes (pure, no I/O).

A summariser call (the system part or the first message contains ``<conversation_transcript>``)
gets ``Summary: `` followed by up to 20 distinct identifier-like tokens of the transcript (tokens
containing a digit, ``/`` or ``_``); anything else gets ``ok: <n> messages received``. Usage:
prompt tokens ≈ request body bytes / 4. Streams are the providers' server-sent event sequences.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

TRANSCRIPT_OPEN = "<conversation_transcript>"
TRANSCRIPT_CLOSE = "</conversation_transcript>"
MAX_SUMMARY_TOKENS = 20

_TOKEN_STRIP = "\"'`.,;:!?()[]{}<>*"
_IDENTIFIER_HINT = re.compile(r"[0-9/_]")


# --- reading the request body -------------------------------------------------------------------


def _text_of(value: Any) -> str:
    """All the text in a message, content part list, block or plain string (any of the three formats)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(t for t in (_text_of(v) for v in value) if t)
    if isinstance(value, dict):
        parts = [_text_of(value[k]) for k in ("text", "content", "output") if k in value]
        return "\n".join(t for t in parts if t)
    return ""


def _conversation(body: dict[str, Any]) -> tuple[str, list[Any]]:
    """(system text, non-system messages) of a chat, Anthropic or Responses body."""
    system_parts = [_text_of(body.get("system")), _text_of(body.get("instructions"))]
    raw = body.get("messages", body.get("input"))
    items: list[Any] = [raw] if isinstance(raw, str) else list(raw) if isinstance(raw, list) else []
    messages: list[Any] = []
    for item in items:
        if isinstance(item, dict) and item.get("role") in ("system", "developer"):
            system_parts.append(_text_of(item))
        else:
            messages.append(item)
    return "\n".join(p for p in system_parts if p), messages


def is_summarizer_call(body: Any) -> bool:
    """The system part or the first message carries the transcript marker."""
    if not isinstance(body, dict):
        return False
    system, messages = _conversation(body)
    head = system + "\n" + (_text_of(messages[0]) if messages else "")
    return TRANSCRIPT_OPEN in head


def transcript_identifiers(text: str, limit: int = MAX_SUMMARY_TOKENS) -> list[str]:
    """Up to ``limit`` distinct tokens of the fenced transcript that contain a digit, ``/`` or ``_``.

    The transcript is the text after the last ``<conversation_transcript>`` up to the next closing
    marker (the whole text when there is no marker).
    """
    start = text.rfind(TRANSCRIPT_OPEN)
    if start >= 0:
        text = text[start + len(TRANSCRIPT_OPEN) :]
        end = text.find(TRANSCRIPT_CLOSE)
        text = text if end < 0 else text[:end]
    seen: list[str] = []
    for raw in text.split():
        token = raw.strip(_TOKEN_STRIP)
        if token and _IDENTIFIER_HINT.search(token) and token not in seen:
            seen.append(token)
            if len(seen) >= limit:
                break
    return seen


def reply_text_for(body: Any) -> str:
    """The deterministic reply to a request body."""
    if not isinstance(body, dict):
        return "ok: 0 messages received"
    system, messages = _conversation(body)
    if is_summarizer_call(body):
        conversation = "\n".join(_text_of(m) for m in messages)
        source = conversation if TRANSCRIPT_OPEN in conversation else system + "\n" + conversation
        return "Summary: " + " ".join(transcript_identifiers(source))
    return f"ok: {len(messages)} messages received"


def prompt_tokens_for(n_chars: int) -> int:
    return max(1, n_chars // 4)


# --- response bodies ------------------------------------------------------------------------------


def model_of(body: Any, default: str) -> str:
    """The body's ``model``, or ``default``."""
    return str(body.get("model") or default) if isinstance(body, Mapping) else default


def chat_completion(body: Any, text: str, prompt_tokens: int) -> dict[str, Any]:
    completion_tokens = prompt_tokens_for(len(text))
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model_of(body, "fake-model"),
        "system_fingerprint": "fp_fake",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def chat_stream(body: dict[str, Any], text: str, prompt_tokens: int) -> Iterator[bytes]:
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model_of(body, "fake-model"),
        "system_fingerprint": "fp_fake",
    }

    def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return sse({**base, "choices": [choice]})

    yield chunk({"role": "assistant", "content": ""}, None)
    for piece in _pieces(text):
        yield chunk({"content": piece}, None)
    yield chunk({}, "stop")
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage"):
        completion_tokens = prompt_tokens_for(len(text))
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        yield sse({**base, "choices": [], "usage": usage})
    yield b"data: [DONE]\n\n"


def anthropic_message(body: Any, text: str, prompt_tokens: int) -> dict[str, Any]:
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model_of(body, "claude-fake"),
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": prompt_tokens, "output_tokens": prompt_tokens_for(len(text))},
    }


def anthropic_stream(body: dict[str, Any], text: str, prompt_tokens: int) -> Iterator[bytes]:
    message = anthropic_message(body, "", prompt_tokens)
    message.update(content=[], stop_reason=None, usage={"input_tokens": prompt_tokens, "output_tokens": 1})
    yield sse({"type": "message_start", "message": message}, event="message_start")
    block_start = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    yield sse(block_start, event="content_block_start")
    for piece in _pieces(text):
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
        yield sse(delta, event="content_block_delta")
    yield sse({"type": "content_block_stop", "index": 0}, event="content_block_stop")
    message_delta = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": prompt_tokens_for(len(text))},
    }
    yield sse(message_delta, event="message_delta")
    yield sse({"type": "message_stop"}, event="message_stop")


def response_object(body: Any, text: str, prompt_tokens: int, *, status: str = "completed") -> dict[str, Any]:
    message = {
        "type": "message",
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    instructions = body.get("instructions") if isinstance(body, Mapping) else None
    return response_envelope(body, [message], prompt_tokens, prompt_tokens_for(len(text)), status, instructions)


def response_envelope(
    body: Any,
    output: list[dict[str, Any]],
    prompt_tokens: int,
    output_tokens: int,
    status: str,
    instructions: Any = None,
    *,
    parallel_tool_calls: bool = True,
) -> dict[str, Any]:
    """A Responses API ``response`` object around ``output`` (empty and without usage until
    ``status`` is ``completed``)."""
    done = status == "completed"
    return {
        "id": f"resp_{uuid.uuid4().hex[:24]}",
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": model_of(body, "fake-model"),
        "output": output if done else [],
        "parallel_tool_calls": parallel_tool_calls,
        "tool_choice": "auto",
        "tools": [],
        "error": None,
        "incomplete_details": None,
        "instructions": instructions,
        "metadata": {},
        "temperature": 1.0,
        "top_p": 1.0,
        "text": {"format": {"type": "text"}},
        "usage": {
            "input_tokens": prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt_tokens + output_tokens,
        }
        if done
        else None,
    }


def responses_stream(body: dict[str, Any], text: str, prompt_tokens: int) -> Iterator[bytes]:
    final = response_object(body, text, prompt_tokens)
    pending = {**response_object(body, "", prompt_tokens, status="in_progress"), "id": final["id"]}
    item = final["output"][0]
    item_id = item["id"]
    empty_part = {"type": "output_text", "text": "", "annotations": []}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": pending},
        {"type": "response.in_progress", "response": pending},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {**item, "status": "in_progress", "content": []},
        },
        {
            "type": "response.content_part.added",
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "part": empty_part,
        },
    ]
    events += [
        {
            "type": "response.output_text.delta",
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "delta": piece,
            "logprobs": [],
        }
        for piece in _pieces(text)
    ]
    events += [
        {
            "type": "response.output_text.done",
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "text": text,
            "logprobs": [],
        },
        {
            "type": "response.content_part.done",
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "part": item["content"][0],
        },
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": final},
    ]
    for seq, event in enumerate(events):
        yield sse({**event, "sequence_number": seq}, event=str(event["type"]))


def error_body(endpoint: str, status: int, message: str) -> dict[str, Any]:
    kind = {
        400: "invalid_request_error",
        401: "authentication_error",
        404: "not_found_error",
        429: "rate_limit_error",
    }.get(status, "api_error")
    if endpoint == "/messages":
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "param": None, "code": str(status)}}


def _pieces(text: str) -> list[str]:
    """The reply split in a few stream deltas (words with their trailing space)."""
    words = re.findall(r"\S+\s*", text)
    return words or [text]


def sse(obj: Mapping[str, Any], event: str | None = None) -> bytes:
    """One server-sent event (``event:`` line optional) carrying ``obj`` as JSON."""
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(obj)}\n\n".encode()
