"""``/v1/responses``: ``instructions`` plus ``input`` (a string or a list of items)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..conversation import Conversation, Format, ImageRef, Message, Part, PartKind, Role
from ..errors import InvalidRequestError
from ..runtime.pacing import pace
from .base import as_json, brief, require_mapping, tools_of

_MESSAGE_ROLES = {
    "system": Role.SYSTEM,
    "developer": Role.SYSTEM,
    "user": Role.USER,
    "assistant": Role.ASSISTANT,
}
_CALLS = ("function_call", "custom_tool_call")
_OUTPUTS = ("function_call_output", "custom_tool_call_output")


def _text_of(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        out = []
        for block in value:
            if isinstance(block, Mapping) and isinstance(block.get("text"), str):
                out.append(block["text"])
            else:
                out.append(as_json(block, where))
        return "\n".join(out)
    return "" if value is None else as_json(value, where)


def _content_parts(content: Any, where: str) -> tuple[Part, ...]:
    if content is None:
        return ()
    if isinstance(content, str):
        return (Part(PartKind.TEXT, content, raw=content),)
    if not isinstance(content, list):
        raise InvalidRequestError(f"{where}.content must be a string or a list of content parts", reason="bad_content")
    parts = []
    for k, block in enumerate(content):
        block = require_mapping(block, f"{where}.content[{k}]")
        kind = block.get("type")
        if kind in ("input_text", "output_text", "text", "refusal", "summary_text"):
            text = block.get("text", block.get("refusal"))
            parts.append(Part(PartKind.TEXT, text if isinstance(text, str) else "", raw=block))
        elif kind == "input_image":
            url = block.get("image_url")
            detail = block.get("detail")
            parts.append(
                Part(
                    PartKind.IMAGE,
                    raw=block,
                    image=ImageRef(
                        url=url if isinstance(url, str) else None, detail=detail if isinstance(detail, str) else None
                    ),
                )
            )
        elif kind == "input_file":
            parts.append(Part(PartKind.DOCUMENT, as_json(block, where), raw=block))
        else:
            parts.append(Part(PartKind.OPAQUE, as_json(block, where), raw=block))
    return tuple(parts)


def parse_item(raw: Any, where: str) -> Message:
    pace()
    item = require_mapping(raw, where)
    kind = item.get("type", "message")
    if kind == "message":
        role_name = item.get("role")
        role = _MESSAGE_ROLES.get(role_name) if isinstance(role_name, str) else None
        if role is None:
            raise InvalidRequestError(
                f"{where}.role {brief(role_name)} is not one of {', '.join(sorted(_MESSAGE_ROLES))}",
                reason="unknown_role",
            )
        return Message(role, _content_parts(item.get("content"), where), raw=item)
    if kind in _CALLS:
        name = item.get("name") if isinstance(item.get("name"), str) else None
        args = item.get("arguments", item.get("input"))
        text = args if isinstance(args, str) else as_json(args, where)
        cid = item.get("call_id")
        part = Part(
            PartKind.TOOL_CALL,
            f"{name or ''}({text})",
            tool_id=cid if isinstance(cid, str) else None,
            tool_name=name,
            raw=item,
        )
        return Message(Role.ASSISTANT, (part,), raw=item)
    if kind in _OUTPUTS:
        cid = item.get("call_id")
        part = Part(
            PartKind.TOOL_RESULT,
            _text_of(item.get("output"), where),
            tool_id=cid if isinstance(cid, str) else None,
            raw=item,
        )
        return Message(Role.TOOL, (part,), raw=item)
    if kind == "reasoning":
        text = _text_of(item.get("summary"), where) + _text_of(item.get("content"), where)
        enc = item.get("encrypted_content")
        if isinstance(enc, str):
            text += enc
        return Message(Role.ASSISTANT, (Part(PartKind.THINKING, text, raw=item),), raw=item)
    # web_search_call, item_reference, mcp_* ...: counted by their JSON, never changed.
    return Message(Role.ASSISTANT, (Part(PartKind.OPAQUE, as_json(item, where), raw=item),), raw=item)


class ResponsesAdapter:
    format = Format.RESPONSES

    def parse(self, body: Mapping[str, Any]) -> Conversation:
        body = require_mapping(body, "request")
        raw_input = body.get("input")
        if isinstance(raw_input, str):
            messages: tuple[Message, ...] = (
                Message(Role.USER, (Part(PartKind.TEXT, raw_input, raw=raw_input),), raw=None),
            )
        elif isinstance(raw_input, list):
            messages = tuple(parse_item(it, f"input[{i}]") for i, it in enumerate(raw_input))
        elif raw_input is None:
            messages = ()
        else:
            raise InvalidRequestError("input must be a string or a list of items", reason="bad_content")
        instructions = body.get("instructions")
        if instructions is not None and not isinstance(instructions, str):
            raise InvalidRequestError("instructions must be a string", reason="bad_field")
        system = (Part(PartKind.TEXT, instructions, raw=instructions),) if instructions else ()
        return Conversation(Format.RESPONSES, messages, system, tools_of(body), body)

    def render_message(self, message: Message) -> Any:
        if message.raw is not None and not message.edited:
            return message.raw
        base: dict[str, Any] = dict(message.raw) if message.raw is not None else {}
        if message.role is Role.TOOL:
            base["output"] = message.parts[0].text
            return base
        if message.parts and message.parts[0].kind is PartKind.THINKING:
            # Old reasoning items are dropped by the engine, never rewritten; keep as is.
            return base
        base.setdefault("type", "message")
        base["role"] = base.get("role", message.role.value)
        text_type = "output_text" if message.role is Role.ASSISTANT else "input_text"
        content = []
        for p in message.parts:
            if p.raw is not None and not p.edited and isinstance(p.raw, Mapping):
                content.append(p.raw)
            else:
                content.append({"type": text_type, "text": p.text})
        base["content"] = content
        return base

    def render(self, conversation: Conversation) -> dict[str, Any]:
        body = dict(conversation.body)
        msgs = conversation.messages
        if isinstance(body.get("input"), str) and len(msgs) == 1 and not msgs[0].edited:
            return body
        if body.get("input") is None and not msgs:
            return body
        body["input"] = [self.render_message(m) for m in msgs]
        return body
