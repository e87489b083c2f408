"""One exception root for the plugin; each subclass says what is wrong and how to fix it."""

from __future__ import annotations


class ContextHookError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigurationError(ContextHookError):
    """A setting or per-model override is invalid (the message names it)."""


class InvalidRequestError(ContextHookError):
    """The request body cannot be read as a conversation of the given format.

    ``reason`` is a short, fixed code (a Prometheus label: ``not_object``, ``not_list``,
    ``unknown_role``, ``bad_content``, ``bad_field``, ``unserialisable``, ``unknown_format``); the
    message says where and what, and never quotes the conversation's text.
    """

    def __init__(self, message: str, *, reason: str = "malformed") -> None:
        super().__init__(message)
        self.reason = reason


class ContextWindowExceededError(ContextHookError):
    """Even after truncation the request does not fit the model's window.

    The proxy hook turns this into an HTTP 400 ``context_window_exceeded`` carrying the counts.
    """

    def __init__(self, message: str, *, tokens: int, limit: int, model: str) -> None:
        super().__init__(message)
        self.tokens = tokens
        self.limit = limit
        self.model = model
