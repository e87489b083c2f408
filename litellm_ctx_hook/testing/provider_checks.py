"""What a provider's API refuses, checked on a request body the way the provider checks it (pure).

Each ``check_*`` returns the first problem as a message worded like the provider's own error (empty
string when the body is acceptable):

* Anthropic Messages: every ``tool_use`` answered by a ``tool_result`` in the next user message and
  every ``tool_result`` answering a ``tool_use`` of the previous assistant message; at most 4 blocks
  with ``cache_control``; input tokens + ``max_tokens`` within the window; with ``thinking`` enabled,
  an assistant message that a tool result follows (the turn in progress) starts with a thinking block
  whose signature is intact.
* OpenAI chat completions: every ``tool_calls`` id answered by a ``tool`` message right after, every
  ``tool`` message answering one; prompt + requested completion tokens within the window.
* OpenAI Responses: every ``function_call`` / ``custom_tool_call`` ``call_id`` with exactly one
  output item and every output with its call; input + ``max_output_tokens`` within the window.

Also here: the *view* of a body the scripted upstream steers by (the tools offered, the tool
results of the newest turn) in the same three formats. Token counts come from a function the caller
passes (the upstream uses the plugin's counter, so that a request the plugin sized is judged by the
same measure).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_CACHE_CONTROL_BLOCKS = 4
CountFn = Callable[[Mapping[str, Any]], int]


def thinking_signature(thinking: str) -> str:
    """The signature the scripted upstream gives a thinking block (a digest of its text)."""
    return "sig-" + hashlib.sha256(thinking.encode()).hexdigest()[:40]


def text_of(value: Any) -> str:
    """All text of a string, a list of blocks/parts or a block (``text``, ``content``, ``output``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(t for t in (text_of(v) for v in value) if t)
    if isinstance(value, Mapping):
        return "\n".join(t for t in (text_of(value[k]) for k in ("text", "content", "output") if k in value) if t)
    return ""


def _blocks(content: Any) -> list[Mapping[str, Any]]:
    if isinstance(content, list):
        return [b for b in content if isinstance(b, Mapping)]
    return []


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# --- views ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    properties: Mapping[str, Any]  # JSON-schema properties of its arguments ({} for a free-form tool)
    required: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RequestView:
    """What the scripted model looks at: the tools it may call, the newest turn's tool results."""

    tools: tuple[ToolSpec, ...]
    newest_results: tuple[tuple[str, str], ...]  # (call id, result text) of the newest turn
    newest_is_user_text: bool  # the newest turn is the user's own words (e.g. the task)

    def tool(self, name: str) -> ToolSpec | None:
        return next((t for t in self.tools if t.name == name), None)


def _spec(name: Any, schema: Any) -> ToolSpec | None:
    if not isinstance(name, str):
        return None
    schema = schema if isinstance(schema, Mapping) else {}
    props = schema.get("properties")
    required = schema.get("required")
    return ToolSpec(
        name,
        props if isinstance(props, Mapping) else {},
        tuple(r for r in required if isinstance(r, str)) if isinstance(required, list) else (),
    )


def _specs(raw: Any, fmt: str) -> tuple[ToolSpec, ...]:
    out: list[ToolSpec] = []
    for tool in raw if isinstance(raw, list) else []:
        if not isinstance(tool, Mapping):
            continue
        if fmt == "chat":
            fn = tool.get("function")
            spec = _spec(fn.get("name"), fn.get("parameters")) if isinstance(fn, Mapping) else None
        elif fmt == "messages":
            spec = _spec(tool.get("name"), tool.get("input_schema"))
        else:
            spec = _spec(tool.get("name"), tool.get("parameters"))
        if spec is not None:
            out.append(spec)
    return tuple(out)


def view_messages(body: Mapping[str, Any]) -> RequestView:
    messages = body.get("messages")
    last = messages[-1] if isinstance(messages, list) and messages else None
    results: list[tuple[str, str]] = []
    user_text = False
    if isinstance(last, Mapping) and last.get("role") == "user":
        blocks = _blocks(last.get("content"))
        results = [
            (str(b.get("tool_use_id")), text_of(b.get("content"))) for b in blocks if b.get("type") == "tool_result"
        ]
        user_text = not results
    return RequestView(_specs(body.get("tools"), "messages"), tuple(results), user_text)


def view_chat(body: Mapping[str, Any]) -> RequestView:
    messages = body.get("messages")
    messages = [m for m in messages if isinstance(m, Mapping)] if isinstance(messages, list) else []
    results: list[tuple[str, str]] = []
    for m in reversed(messages):
        if m.get("role") != "tool":
            break
        results.insert(0, (str(m.get("tool_call_id")), text_of(m.get("content"))))
    user_text = not results and bool(messages) and messages[-1].get("role") == "user"
    return RequestView(_specs(body.get("tools"), "chat"), tuple(results), user_text)


_CALL_ITEMS = {"function_call": "function_call_output", "custom_tool_call": "custom_tool_call_output"}
_OUTPUT_ITEMS = {v: k for k, v in _CALL_ITEMS.items()}


def _items(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    raw = body.get("input")
    if isinstance(raw, str):
        return [{"type": "message", "role": "user", "content": raw}]
    return [i for i in raw if isinstance(i, Mapping)] if isinstance(raw, list) else []


def view_responses(body: Mapping[str, Any]) -> RequestView:
    items = _items(body)
    results: list[tuple[str, str]] = []
    for item in reversed(items):  # the outputs after the newest batch of calls
        if item.get("type") in _OUTPUT_ITEMS:
            results.insert(0, (str(item.get("call_id")), text_of(item.get("output"))))
        elif item.get("type") != "reasoning":
            break
    last = items[-1] if items else None
    user_text = not results and isinstance(last, Mapping) and last.get("role") == "user"
    return RequestView(_specs(body.get("tools"), "responses"), tuple(results), user_text)


VIEWS: Mapping[str, Callable[[Mapping[str, Any]], RequestView]] = {
    "/messages": view_messages,
    "/chat/completions": view_chat,
    "/responses": view_responses,
}


# --- checks -----------------------------------------------------------------------------------------


def count_cache_control(body: Mapping[str, Any]) -> int:
    """Blocks carrying ``cache_control`` in the system part, the tools and the messages."""
    n = 0
    for block in _blocks(body.get("system")) + _blocks(body.get("tools")):
        n += "cache_control" in block
    messages = body.get("messages")
    for m in messages if isinstance(messages, list) else []:
        if isinstance(m, Mapping):
            n += sum("cache_control" in b for b in _blocks(m.get("content")))
    return n


def _thinking_enabled(body: Mapping[str, Any]) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, Mapping) and thinking.get("type") in ("enabled", "adaptive")


def check_messages(body: Mapping[str, Any], window: int, count: CountFn) -> str:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or m.get("role") not in ("user", "assistant"):
            return f"messages.{i}: role must be 'user' or 'assistant'"
        if m.get("role") != "assistant":
            continue
        uses = [str(b.get("id")) for b in _blocks(m.get("content")) if b.get("type") == "tool_use"]
        if not uses:
            continue
        nxt = messages[i + 1] if i + 1 < len(messages) else None
        answered = (
            {str(b.get("tool_use_id")) for b in _blocks(nxt.get("content")) if b.get("type") == "tool_result"}
            if isinstance(nxt, Mapping) and nxt.get("role") == "user"
            else set()
        )
        missing = [u for u in uses if u not in answered]
        if missing and nxt is not None:
            return (
                f"messages.{i + 1}: `tool_use` ids were found without `tool_result` blocks immediately after: "
                f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block in the "
                "next message."
            )
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping) or m.get("role") != "user":
            continue
        prev = messages[i - 1] if i > 0 else None
        offered = (
            {str(b.get("id")) for b in _blocks(prev.get("content")) if b.get("type") == "tool_use"}
            if isinstance(prev, Mapping) and prev.get("role") == "assistant"
            else set()
        )
        for j, b in enumerate(_blocks(m.get("content"))):
            if b.get("type") == "tool_result" and str(b.get("tool_use_id")) not in offered:
                return (
                    f"messages.{i}.content.{j}: unexpected `tool_use_id` found in `tool_result` blocks: "
                    f"{b.get('tool_use_id')}. Each `tool_result` block must have a corresponding `tool_use` block "
                    "in the previous message."
                )
    n_cache = count_cache_control(body)
    if n_cache > MAX_CACHE_CONTROL_BLOCKS:
        return f"A maximum of {MAX_CACHE_CONTROL_BLOCKS} blocks with cache_control may be provided. Found {n_cache}."
    if _thinking_enabled(body):
        for i, m in enumerate(messages):
            if not isinstance(m, Mapping):
                continue
            for j, b in enumerate(_blocks(m.get("content"))):
                if b.get("type") == "thinking" and b.get("signature") != thinking_signature(str(b.get("thinking"))):
                    return f"messages.{i}.content.{j}: Invalid `signature` in `thinking` block"
        last = messages[-1]
        in_tool_loop = isinstance(last, Mapping) and any(
            b.get("type") == "tool_result" for b in _blocks(last.get("content"))
        )
        if in_tool_loop and len(messages) >= 2 and isinstance(messages[-2], Mapping):
            first = _blocks(messages[-2].get("content"))[:1]
            kind = first[0].get("type") if first else "text"
            if kind not in ("thinking", "redacted_thinking"):
                return (
                    f"messages.{len(messages) - 2}.content.0.type: Expected `thinking` or `redacted_thinking`, but "
                    f"found `{kind}`. When `thinking` is enabled, a final `assistant` message must start with a "
                    "thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks)."
                )
    tokens, max_tokens = count(body), _int(body.get("max_tokens"))
    if tokens + max_tokens > window:
        return (
            f"input length and `max_tokens` exceed context limit: {tokens} + {max_tokens} > {window}, "
            "decrease input length or `max_tokens` and try again"
        )
    return ""


def check_chat(body: Mapping[str, Any], window: int, count: CountFn) -> str:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "Invalid 'messages': empty array. Expected an array with minimum length 1."
    pending: list[str] = []
    for i, m in enumerate(messages):
        if not isinstance(m, Mapping):
            return f"Invalid type for 'messages[{i}]': expected an object."
        role = m.get("role")
        if role == "tool":
            call_id = str(m.get("tool_call_id"))
            if call_id not in pending:
                return (
                    f"Invalid parameter: messages with role 'tool' must be a response to a preceeding message with "
                    f"'tool_calls' (messages[{i}], tool_call_id {call_id})."
                )
            pending.remove(call_id)
            continue
        if pending:
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
                f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(pending)}"
            )
        calls = m.get("tool_calls") if role == "assistant" else None
        pending = [str(c.get("id")) for c in calls if isinstance(c, Mapping)] if isinstance(calls, list) else []
    if pending:
        return (
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
            f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(pending)}"
        )
    tokens = count(body)
    completion = _int(body.get("max_completion_tokens")) or _int(body.get("max_tokens"))
    if tokens + completion > window:
        return (
            f"This model's maximum context length is {window} tokens. However, you requested {tokens + completion} "
            f"tokens ({tokens} in the messages, {completion} in the completion). Please reduce the length of the "
            "messages or completion."
        )
    return ""


def check_responses(body: Mapping[str, Any], window: int, count: CountFn) -> str:
    calls: dict[str, str] = {}
    answered: set[str] = set()
    for item in _items(body):
        kind = item.get("type")
        call_id = str(item.get("call_id"))
        if kind in _CALL_ITEMS:
            calls[call_id] = str(kind)
        elif kind in _OUTPUT_ITEMS:
            if calls.get(call_id) != _OUTPUT_ITEMS[str(kind)]:
                return f"No tool call found for function call output with call_id {call_id}."
            if call_id in answered:
                return f"Duplicate item found with id {call_id}."
            answered.add(call_id)
    for call_id in calls:
        if call_id not in answered:
            return f"No tool output found for function call {call_id}."
    tokens, output = count(body), _int(body.get("max_output_tokens"))
    if tokens + output > window:
        return "Your input exceeds the context window of this model. Please adjust your input and try again."
    return ""


CHECKS: Mapping[str, Callable[[Mapping[str, Any], int, CountFn], str]] = {
    "/messages": check_messages,
    "/chat/completions": check_chat,
    "/responses": check_responses,
}


def error_code(endpoint: str, message: str) -> str | None:
    """OpenAI's ``code`` for a window error (``context_length_exceeded``), else None."""
    if endpoint != "/messages" and ("context length" in message or "context window" in message):
        return "context_length_exceeded"
    return None


def body_text(body: Any) -> str:
    """The whole body as text (JSON), for looking up identifiers."""
    return json.dumps(body, ensure_ascii=False)
