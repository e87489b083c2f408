"""``/v1/chat/completions``: OpenAI chat messages with ``tool_calls``, ``tool`` and content parts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..conversation import Conversation, Format, ImageRef, Message, Part, PartKind, Role
from ..errors import InvalidRequestError
from ..runtime.pacing import pace
from .base import as_json, brief, require_list, require_mapping, tools_of

_ROLES = {
    "system": Role.SYSTEM,
    "developer": Role.SYSTEM,
    "user": Role.USER,
    "assistant": Role.ASSISTANT,
    "tool": Role.TOOL,
    "function": Role.TOOL,
}


def _content_parts(content: Any, where: str) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [Part(PartKind.TEXT, content, raw=content)]
    if not isinstance(content, list):
        raise InvalidRequestError(f"{where}.content must be a string, a list of parts or null", reason="bad_content")
    parts: list[Part] = []
    for k, block in enumerate(content):
        if isinstance(block, str):
            parts.append(Part(PartKind.TEXT, block, raw=block))
            continue
        block = require_mapping(block, f"{where}.content[{k}]")
        kind = block.get("type")
        if kind in ("text", "refusal") and isinstance(block.get(kind), str):
            parts.append(Part(PartKind.TEXT, block[kind], raw=block))
        elif kind == "image_url":
            spec = block.get("image_url")
            url = spec.get("url") if isinstance(spec, Mapping) else spec
            detail = spec.get("detail") if isinstance(spec, Mapping) else None
            parts.append(
                Part(
                    PartKind.IMAGE,
                    raw=block,
                    image=ImageRef(
                        url=url if isinstance(url, str) else None, detail=detail if isinstance(detail, str) else None
                    ),
                )
            )
        elif kind == "file":
            parts.append(Part(PartKind.DOCUMENT, as_json(block, where), raw=block))
        else:
            parts.append(Part(PartKind.OPAQUE, as_json(block, where), raw=block))
    return parts


def _tool_call_parts(calls: Any, where: str) -> list[Part]:
    if calls is None:
        return []
    parts: list[Part] = []
    for k, call in enumerate(require_list(calls, f"{where}.tool_calls")):
        call = require_mapping(call, f"{where}.tool_calls[{k}]")
        fn_value = call.get("function")
        fn: Mapping[str, Any] = fn_value if isinstance(fn_value, Mapping) else {}
        name = fn.get("name") if isinstance(fn.get("name"), str) else None
        args = fn.get("arguments")
        text = args if isinstance(args, str) else as_json(args, where)
        call_id = call.get("id")
        parts.append(
            Part(
                PartKind.TOOL_CALL,
                f"{name or ''}({text})",
                tool_id=call_id if isinstance(call_id, str) else None,
                tool_name=name,
                raw=call,
            )
        )
    return parts


def parse_message(raw: Any, where: str) -> Message:
    pace()
    msg = require_mapping(raw, where)
    role_name = msg.get("role")
    role = _ROLES.get(role_name) if isinstance(role_name, str) else None
    if role is None:
        raise InvalidRequestError(
            f"{where}.role {brief(role_name)} is not one of {', '.join(sorted(_ROLES))}", reason="unknown_role"
        )
    name = msg.get("name") if isinstance(msg.get("name"), str) else None
    if role is Role.TOOL:
        call_id = msg.get("tool_call_id")
        body = _content_parts(msg.get("content"), where)
        text = "\n".join(p.text for p in body)
        part = Part(
            PartKind.TOOL_RESULT,
            text,
            tool_id=call_id if isinstance(call_id, str) else None,
            tool_name=name,
            raw=msg.get("content"),
        )
        return Message(role, (part,), raw=msg, name=name)
    parts = _content_parts(msg.get("content"), where)
    if role is Role.ASSISTANT:
        parts += _tool_call_parts(msg.get("tool_calls"), where)
        if msg.get("function_call") is not None:
            parts.append(Part(PartKind.OPAQUE, as_json(msg["function_call"], where)))
    return Message(role, tuple(parts), raw=msg, name=name)


def _render_content(message: Message, original: Any) -> Any:
    blocks = [p for p in message.parts if p.kind is not PartKind.TOOL_CALL]
    if all(p.kind is PartKind.TEXT for p in blocks) and (original is None or isinstance(original, str)):
        return "\n".join(p.text for p in blocks) if blocks else original
    out: list[Any] = []
    for p in blocks:
        if p.raw is not None and not p.edited:
            out.append(p.raw)
        else:
            out.append({"type": "text", "text": p.text})
    return out


class OpenAIChatAdapter:
    format = Format.OPENAI

    def parse(self, body: Mapping[str, Any]) -> Conversation:
        body = require_mapping(body, "request")
        raw_messages = require_list(body.get("messages"), "messages")
        messages = tuple(parse_message(m, f"messages[{i}]") for i, m in enumerate(raw_messages))
        return Conversation(Format.OPENAI, messages, (), tools_of(body), body)

    def render_message(self, message: Message) -> Any:
        if message.raw is not None and not message.edited:
            return message.raw
        base: dict[str, Any] = dict(message.raw) if message.raw is not None else {}
        base["role"] = base.get("role", message.role.value)
        if message.role is Role.TOOL:
            result = message.parts[0]
            base["content"] = result.text
            if result.tool_id is not None:
                base["tool_call_id"] = result.tool_id
            return base
        base["content"] = _render_content(message, base.get("content"))
        calls = [p.raw for p in message.parts if p.kind is PartKind.TOOL_CALL]
        if calls:
            base["tool_calls"] = calls
        return base

    def render(self, conversation: Conversation) -> dict[str, Any]:
        body = dict(conversation.body)
        body["messages"] = [self.render_message(m) for m in conversation.messages]
        return body
