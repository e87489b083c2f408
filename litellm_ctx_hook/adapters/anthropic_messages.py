"""``/v1/messages``: Anthropic Messages with a separate ``system`` and typed content blocks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..conversation import Conversation, Format, ImageRef, Message, Part, PartKind, Role
from ..errors import InvalidRequestError
from .base import as_json, brief, require_list, require_mapping, tools_of

_ROLES = {"user": Role.USER, "assistant": Role.ASSISTANT}


def _image(block: Mapping[str, Any]) -> ImageRef:
    src = block.get("source")
    if not isinstance(src, Mapping):
        return ImageRef()
    if src.get("type") == "base64":
        data = src.get("data")
        media = src.get("media_type")
        return ImageRef(
            media_type=media if isinstance(media, str) else None,
            data=data if isinstance(data, str) else None,
        )
    url = src.get("url")
    return ImageRef(url=url if isinstance(url, str) else None)


def _result_text(content: Any, where: str) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for block in content:
            if isinstance(block, Mapping) and block.get("type") == "text" and isinstance(block.get("text"), str):
                texts.append(block["text"])
            else:
                texts.append(as_json(block, where))
        return "\n".join(texts)
    return as_json(content, where)


def _tool_input_text(name: str | None, tool_input: Any, where: str) -> str:
    """A tool call as the model reads it: its name, then one line per parameter with raw strings."""
    if not isinstance(tool_input, Mapping):
        return f"{name or ''}\n{as_json(tool_input, where)}"
    lines = [name or ""]
    for key, value in tool_input.items():
        lines.append(f"{key}: {value if isinstance(value, str) else as_json(value, where)}")
    return "\n".join(lines)


def _block(block: Any, where: str) -> Part:
    if isinstance(block, str):
        return Part(PartKind.TEXT, block, raw=block)
    block = require_mapping(block, where)
    kind = block.get("type")
    if kind == "text" and isinstance(block.get("text"), str):
        return Part(PartKind.TEXT, block["text"], raw=block)
    if kind == "image":
        return Part(PartKind.IMAGE, raw=block, image=_image(block))
    if kind == "document":
        src = block.get("source")
        text = src.get("data") if isinstance(src, Mapping) and src.get("type") == "text" else None
        return Part(PartKind.DOCUMENT, text if isinstance(text, str) else as_json(block, where), raw=block)
    if kind == "tool_use":
        name = block.get("name") if isinstance(block.get("name"), str) else None
        tid = block.get("id")
        return Part(
            PartKind.TOOL_CALL,
            _tool_input_text(name, block.get("input"), where),
            tool_id=tid if isinstance(tid, str) else None,
            tool_name=name,
            raw=block,
        )
    if kind == "tool_result":
        tid = block.get("tool_use_id")
        return Part(
            PartKind.TOOL_RESULT,
            _result_text(block.get("content"), where),
            tool_id=tid if isinstance(tid, str) else None,
            raw=block,
        )
    if kind == "thinking" and isinstance(block.get("thinking"), str):
        return Part(PartKind.THINKING, block["thinking"], raw=block)
    if kind == "redacted_thinking":
        data = block.get("data")
        return Part(PartKind.THINKING, data if isinstance(data, str) else "", raw=block)
    return Part(PartKind.OPAQUE, as_json(block, where), raw=block)


def parse_message(raw: Any, where: str) -> Message:
    msg = require_mapping(raw, where)
    role_name = msg.get("role")
    role = _ROLES.get(role_name) if isinstance(role_name, str) else None
    if role is None:
        raise InvalidRequestError(
            f"{where}.role {brief(role_name)} must be 'user' or 'assistant'", reason="unknown_role"
        )
    content = msg.get("content")
    if content is None:
        parts: tuple[Part, ...] = ()
    elif isinstance(content, str):
        parts = (Part(PartKind.TEXT, content, raw=content),)
    elif isinstance(content, list):
        parts = tuple(_block(b, f"{where}.content[{k}]") for k, b in enumerate(content))
    else:
        raise InvalidRequestError(f"{where}.content must be a string or a list of blocks", reason="bad_content")
    return Message(role, parts, raw=msg)


def _system_parts(system: Any) -> tuple[Part, ...]:
    if system is None:
        return ()
    if isinstance(system, str):
        return (Part(PartKind.TEXT, system, raw=system),)
    if isinstance(system, list):
        return tuple(_block(b, f"system[{k}]") for k, b in enumerate(system))
    raise InvalidRequestError("system must be a string or a list of text blocks", reason="bad_field")


def render_part(part: Part) -> Any:
    if part.raw is not None and not part.edited:
        return part.raw
    template = dict(part.raw) if isinstance(part.raw, Mapping) else {}
    if part.kind is PartKind.TOOL_RESULT:
        template.update(type="tool_result", tool_use_id=part.tool_id, content=part.text)
        return template
    # Anything else the engine rewrites becomes text (cleared image, cut text, summary).
    out: dict[str, Any] = {"type": "text", "text": part.text}
    if "cache_control" in template:
        out["cache_control"] = template["cache_control"]
    return out


class AnthropicMessagesAdapter:
    format = Format.ANTHROPIC

    def parse(self, body: Mapping[str, Any]) -> Conversation:
        body = require_mapping(body, "request")
        raw_messages = require_list(body.get("messages"), "messages")
        messages = tuple(parse_message(m, f"messages[{i}]") for i, m in enumerate(raw_messages))
        return Conversation(Format.ANTHROPIC, messages, _system_parts(body.get("system")), tools_of(body), body)

    def render_message(self, message: Message) -> Any:
        if message.raw is not None and not message.edited:
            return message.raw
        base: dict[str, Any] = dict(message.raw) if message.raw is not None else {}
        base["role"] = message.role.value
        original = base.get("content")
        if (
            isinstance(original, str)
            and all(p.kind is PartKind.TEXT for p in message.parts)
            and len(message.parts) == 1
        ):
            base["content"] = message.parts[0].text
        else:
            base["content"] = [render_part(p) for p in message.parts]
        return base

    def render(self, conversation: Conversation) -> dict[str, Any]:
        body = dict(conversation.body)
        body["messages"] = [self.render_message(m) for m in conversation.messages]
        return body
