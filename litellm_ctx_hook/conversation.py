"""The neutral, typed conversation that every endpoint format is parsed into.

A :class:`Message` keeps the exact dict it was parsed from (``raw``) so an untouched message is
written back as the very same object. Parts keep their raw block too; a part or message built
by the engine has ``raw=None`` and is rendered by its format's adapter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Format(StrEnum):
    """The three request formats LiteLLM hands to the hook."""

    OPENAI = "openai"  # /v1/chat/completions
    ANTHROPIC = "anthropic"  # /v1/messages
    RESPONSES = "responses"  # /v1/responses


class Role(StrEnum):
    SYSTEM = "system"  # also OpenAI "developer"
    USER = "user"
    ASSISTANT = "assistant"
    TOOL = "tool"  # OpenAI tool message, Responses function_call_output


class PartKind(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    DOCUMENT = "document"
    TOOL_CALL = "tool_call"
    TOOL_RESULT = "tool_result"
    THINKING = "thinking"  # Anthropic thinking / redacted_thinking, Responses reasoning
    OPAQUE = "opaque"  # anything we do not understand: counted by its JSON, never changed


@dataclass(frozen=True, slots=True)
class ImageRef:
    """Where an image comes from; ``url`` may be a data URL."""

    url: str | None = None
    media_type: str | None = None
    data: str | None = None  # base64 payload (Anthropic source.type == base64)
    detail: str | None = None  # OpenAI "low" | "high" | "auto"


@dataclass(frozen=True, slots=True)
class Part:
    """One piece of a message's content.

    ``text`` is what the part says (for a tool call: its name and JSON arguments; for a tool
    result: its text; for opaque parts: their JSON) and is what gets counted and condensed.
    """

    kind: PartKind
    text: str = ""
    tool_id: str | None = None
    tool_name: str | None = None
    image: ImageRef | None = None
    raw: Any = None  # original block: kept verbatim unless ``edited``; a template if edited
    edited: bool = False


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    parts: tuple[Part, ...]
    raw: Mapping[str, Any] | None = None  # original message/item: written back as is unless edited
    name: str | None = None  # OpenAI ``name`` (counts one token)
    edited: bool = False  # parts changed by the engine: the adapter renders it anew
    # Computed once, at construction: planning and verification read them many times per request.
    signature: int = field(init=False, repr=False, compare=False)  # a process-local hash of all that counts
    tool_call_ids: tuple[str, ...] = field(init=False, repr=False, compare=False)
    tool_result_ids: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        content: list[tuple[Any, ...]] = []
        calls: list[str] = []
        results: list[str] = []
        for p in self.parts:
            if p.image is not None:
                content.append((p.kind, p.text, p.tool_id, p.image.url or p.image.data, p.image.detail))
            else:
                content.append((p.kind, p.text, p.tool_id))
            if p.tool_id:
                if p.kind is PartKind.TOOL_CALL:
                    calls.append(p.tool_id)
                elif p.kind is PartKind.TOOL_RESULT:
                    results.append(p.tool_id)
        object.__setattr__(self, "signature", hash((self.raw_role, self.name, tuple(content))))
        object.__setattr__(self, "tool_call_ids", tuple(calls))
        object.__setattr__(self, "tool_result_ids", tuple(results))

    @property
    def text(self) -> str:
        return "\n".join(p.text for p in self.parts if p.text)

    def has(self, kind: PartKind) -> bool:
        return any(p.kind is kind for p in self.parts)

    @property
    def raw_role(self) -> str:
        """The role string as the client wrote it (``developer`` stays ``developer``)."""
        role = self.raw.get("role") if self.raw is not None else None
        return role if isinstance(role, str) else self.role.value

    @staticmethod
    def system_of(parts: tuple[Part, ...]) -> Message:
        """A separate system prompt (Anthropic ``system``, Responses ``instructions``) as a message."""
        return Message(Role.SYSTEM, parts)


@dataclass(frozen=True, slots=True)
class Conversation:
    """A request's conversation: system part, ordered messages, tool definitions.

    ``system`` holds the separate system prompt of Anthropic (``system``) and Responses
    (``instructions``); OpenAI system messages stay in ``messages`` where the client put them.
    ``body`` is the whole request the conversation came from (read-only).
    """

    format: Format
    messages: tuple[Message, ...]
    system: tuple[Part, ...] = ()
    tools: tuple[Mapping[str, Any], ...] = ()
    body: Mapping[str, Any] = field(default_factory=dict)

    def with_messages(self, messages: Sequence[Message]) -> Conversation:
        return Conversation(self.format, tuple(messages), self.system, self.tools, self.body)
