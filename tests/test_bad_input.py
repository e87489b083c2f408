"""Malformed request bodies: each is analysed or gets a ContextHookError that says what is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from litellm_ctx_hook import api
from litellm_ctx_hook.errors import ContextHookError, InvalidRequestError


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"k": value}
    return value


BIG = "word " * 2_000_000  # 10 MB

CASES: list[tuple[str, str, Any, str | None]] = [
    # (case, format, payload, expected error text or None when it is analysed)
    ("messages not a list", "openai", {"messages": "hello"}, "messages must be a list"),
    ("message not an object", "openai", [42], r"messages\[0\] must be an object"),
    ("unknown role", "openai", [{"role": "robot", "content": "x"}], r"messages\[0\]\.role 'robot'"),
    ("anthropic system role", "anthropic", [{"role": "system", "content": "x"}], "must be 'user' or 'assistant'"),
    ("bad content type", "openai", [{"role": "user", "content": 5}], r"content must be"),
    ("unknown responses input", "responses", {"input": 5}, "input must be a string or a list"),
    ("unknown format", "yaml", [], "unknown format"),
    ("None content", "openai", [{"role": "user", "content": None}], None),
    ("unknown part types", "openai", [{"role": "user", "content": [{"type": "hologram", "data": 1}]}], None),
    ("unknown anthropic block", "anthropic", [{"role": "user", "content": [{"type": "sparkle"}]}], None),
    ("10 MB string", "openai", [{"role": "user", "content": BIG}], None),
    (
        "deeply nested JSON",
        "openai",
        [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [{"id": "c", "type": "function", "function": {"name": "f", "arguments": _nested(5000)}}],
            }
        ],
        "cannot be serialised as JSON",
    ),
    (
        "non-UTF-8 data URL",
        "openai",
        [
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,//79/Pv6+fj3"}}],
            }
        ],
        None,
    ),
    (
        "garbage base64 data URL",
        "openai",
        [
            {
                "role": "user",
                "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,%%%not-base64%%%"}}],
            }
        ],
        None,
    ),
]


@pytest.mark.parametrize(("case", "fmt", "payload", "error"), CASES, ids=[c[0] for c in CASES])
def test_bad_input(case: str, fmt: str, payload: Any, error: str | None) -> None:
    if error is None:
        info = api.get_context_info(payload, format=fmt, model="gpt-4o")
        assert info["estimated_tokens"] > 0
        if case == "10 MB string":
            assert info["risk_level"] == "OVERFLOW"
        return
    with pytest.raises(ContextHookError, match=error) as exc:
        api.get_context_info(payload, format=fmt, model="gpt-4o")
    assert isinstance(exc.value, InvalidRequestError)
