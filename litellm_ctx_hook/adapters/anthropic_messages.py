"""``/v1/messages``: Anthropic Messages with a separate ``system`` and typed content blocks."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..conversation import Conversation, Format, ImageRef, Message, Part, PartKind, Role
from ..errors import InvalidRequestError
from ..runtime.pacing import pace
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
    pace()
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


# -- prompt-cache breakpoints ---------------------------------------------------------------------
MAX_BREAKPOINTS = 4  # Anthropic rejects a request with more cache_control blocks
_CACHEABLE = {"text", "image", "document", "tool_use", "tool_result"}  # blocks that may carry cache_control


def _marked(block: Any) -> bool:
    return isinstance(block, Mapping) and block.get("cache_control") is not None


def _blocks(message: Any) -> list[Any]:
    content = message.get("content") if isinstance(message, Mapping) else None
    return content if isinstance(content, list) else []


def fit_breakpoints(body: Mapping[str, Any], prefix_end: int, fmt: Format = Format.ANTHROPIC) -> Mapping[str, Any]:
    """``body`` with a prompt-cache breakpoint at the end of its managed prefix (the last block of
    message ``prefix_end``: summary or cleared span), when the client uses ``cache_control``.

    The client's breakpoints stay while the request keeps within :data:`MAX_BREAKPOINTS`: those on
    the system prompt and tools always; after ours, the latest of the client's in the prefix,
    leaving one place for the newest turns, then the latest of the client's after the prefix (the
    ones the next request reads). What the prefix keeps depends on the prefix alone, so a prefix
    sent again on a later turn keeps its bytes. Never changes ``body`` itself; a body without
    ``cache_control``, or of another format than ``fmt`` says, is returned as it is.
    """
    messages = body.get("messages")
    if fmt is not Format.ANTHROPIC or not isinstance(messages, list) or not 0 <= prefix_end < len(messages):
        return body
    system, tools = body.get("system"), body.get("tools")
    fixed = sum(_marked(b) for b in (system if isinstance(system, list) else ()))
    fixed += sum(_marked(t) for t in (tools if isinstance(tools, list) else ()))
    marks = [(i, j) for i, m in enumerate(messages) for j, b in enumerate(_blocks(m)) if _marked(b)]
    if not fixed and not marks:
        return body
    out = list(messages)
    ours = _our_block(out[prefix_end]) if fixed < MAX_BREAKPOINTS else None
    if ours is not None and (prefix_end, ours) not in marks:
        later = [messages[i]["content"][j] for i, j in marks if i > prefix_end]
        earlier = [messages[i]["content"][j] for i, j in marks if i <= prefix_end]
        control = later[0] if later else earlier[-1] if earlier else {"cache_control": {"type": "ephemeral"}}
        content = _content_blocks(out[prefix_end])
        content[ours] = {**content[ours], "cache_control": control["cache_control"]}
        out[prefix_end] = {**out[prefix_end], "content": content}
    room = max(0, MAX_BREAKPOINTS - fixed - (ours is not None))
    prefix = [m for m in marks if m[0] <= prefix_end and m != (prefix_end, ours)]
    tail = [m for m in marks if m[0] > prefix_end]
    kept_prefix = prefix[len(prefix) - min(len(prefix), max(0, room - 1)) :]
    kept_tail = tail[len(tail) - min(len(tail), room - len(kept_prefix)) :]
    for i, j in sorted(set(prefix + tail) - set(kept_prefix + kept_tail)):
        content = list(_blocks(out[i]))
        content[j] = {k: v for k, v in content[j].items() if k != "cache_control"}
        out[i] = {**out[i], "content": content}
    return {**body, "messages": out}


def _content_blocks(message: Mapping[str, Any]) -> list[Any]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content) if isinstance(content, list) else []


def _our_block(message: Any) -> int | None:
    """The last block of ``message`` that can carry a breakpoint (not thinking, not empty text)."""
    if not isinstance(message, Mapping):
        return None
    blocks = _content_blocks(message)
    for j in range(len(blocks) - 1, -1, -1):
        b = blocks[j]
        if isinstance(b, Mapping) and b.get("type") in _CACHEABLE and (b.get("type") != "text" or b.get("text")):
            return j
    return None
