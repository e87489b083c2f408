"""What every endpoint adapter offers, and helpers shared by the three of them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from ..conversation import Conversation, Format, Message
from ..errors import InvalidRequestError


class Adapter(Protocol):
    """Parse a request body into a :class:`Conversation` and write one back."""

    format: Format

    def parse(self, body: Mapping[str, Any]) -> Conversation: ...

    def render(self, conversation: Conversation) -> dict[str, Any]:
        """A new request body: ``conversation.body`` with the conversation written back.

        Messages that were not edited are the very objects that were parsed.
        """
        ...

    def render_message(self, message: Message) -> Any: ...


def brief(value: Any) -> str:
    """A value named in an error message without quoting the conversation: short strings as they
    are (a role, a type), anything else by its type and size."""
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    if isinstance(value, str):
        return repr(value) if len(value) <= 24 and value.isprintable() else f"a string of {len(value)} characters"
    return f"a {type(value).__name__}"


def as_json(value: Any, where: str) -> str:
    """Compact JSON of a value for counting; a clear error for values JSON cannot hold."""
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    except (RecursionError, ValueError) as exc:
        raise InvalidRequestError(
            f"{where} cannot be serialised as JSON ({exc.__class__.__name__})", reason="unserialisable"
        ) from None


def require_mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidRequestError(f"{where} must be an object, got {type(value).__name__}", reason="not_object")
    return value


def require_list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise InvalidRequestError(f"{where} must be a list, got {type(value).__name__}", reason="not_list")
    return value


def tools_of(body: Mapping[str, Any]) -> tuple[Mapping[str, Any], ...]:
    tools = body.get("tools")
    if not isinstance(tools, list):
        return ()
    return tuple(t for t in tools if isinstance(t, Mapping))
