"""Endpoint adapters: request body ⇄ :class:`~litellm_ctx_hook.conversation.Conversation`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..conversation import Format
from ..errors import InvalidRequestError
from .anthropic_messages import AnthropicMessagesAdapter
from .base import Adapter
from .openai_chat import OpenAIChatAdapter
from .responses import ResponsesAdapter

MESSAGES_KEY = {Format.OPENAI: "messages", Format.ANTHROPIC: "messages", Format.RESPONSES: "input"}  # the turns

_ADAPTERS: dict[Format, Adapter] = {
    Format.OPENAI: OpenAIChatAdapter(),
    Format.ANTHROPIC: AnthropicMessagesAdapter(),
    Format.RESPONSES: ResponsesAdapter(),
}


def adapter_for(fmt: Format | str) -> Adapter:
    try:
        return _ADAPTERS[Format(fmt)]
    except ValueError:
        raise InvalidRequestError(
            f"unknown format {fmt!r}: use one of {', '.join(f.value for f in Format)}", reason="unknown_format"
        ) from None


_ANTHROPIC_BLOCKS = {"tool_use", "tool_result", "thinking", "redacted_thinking", "image", "document"}
_RESPONSES_ITEMS = {"function_call", "function_call_output", "reasoning", "input_text", "output_text"}


def detect_format(body: Mapping[str, Any]) -> Format:
    """Guess the format of a request body or bare message list wrapped as ``{"messages": [...]}``."""
    if "input" in body or "instructions" in body:
        return Format.RESPONSES
    if "system" in body and "messages" in body:
        return Format.ANTHROPIC
    messages = body.get("messages")
    if isinstance(messages, list):
        for m in messages:
            if not isinstance(m, Mapping):
                continue
            if m.get("role") in ("system", "developer", "tool") or "tool_calls" in m:
                return Format.OPENAI
            if m.get("type") in _RESPONSES_ITEMS:
                return Format.RESPONSES
            content = m.get("content")
            if isinstance(content, list):
                for b in content:
                    if isinstance(b, Mapping) and b.get("type") in _ANTHROPIC_BLOCKS:
                        return Format.ANTHROPIC
                    if isinstance(b, Mapping) and b.get("type") in _RESPONSES_ITEMS:
                        return Format.RESPONSES
    return Format.OPENAI


def wrap_request(payload: Any, fmt: Format) -> Mapping[str, Any]:
    """Accept a whole request body or just its message list / Responses input."""
    if isinstance(payload, Mapping):
        return payload
    if fmt is Format.RESPONSES:
        return {"input": payload}
    return {"messages": payload}


__all__ = ["Adapter", "adapter_for", "detect_format", "wrap_request"]
