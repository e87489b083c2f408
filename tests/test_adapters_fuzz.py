"""Fuzzing the adapters and the hook in process: any JSON a client can send is either read as a
conversation (and written back unchanged) or refused with an InvalidRequestError naming a reason;
through the hook it is managed, rejected as too large, or passed through untouched with one
WARNING line: never a fault, never an ERROR line, never a stack trace."""

from __future__ import annotations

import asyncio
import copy
import logging
from typing import Any

import pytest
from fastapi import HTTPException
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from support import settings

from litellm_ctx_hook.adapters import MESSAGES_KEY, adapter_for
from litellm_ctx_hook.conversation import Format
from litellm_ctx_hook.errors import InvalidRequestError
from litellm_ctx_hook.proxy.hook import ContextHook

REASONS = {"not_object", "not_list", "unknown_role", "bad_content", "bad_field", "unserialisable", "unknown_format"}
KEYS = [
    "role", "content", "type", "text", "tool_calls", "tool_call_id", "id", "function", "name", "arguments",
    "tool_use_id", "input", "source", "data", "image_url", "url", "call_id", "output", "summary", "thinking",
    "detail", "media_type",
]  # fmt: skip
ROLES = ["system", "developer", "user", "assistant", "tool", "function", "wizard", ""]
TYPES = [
    "text", "image_url", "image", "tool_use", "tool_result", "thinking", "redacted_thinking", "document", "file",
    "input_text", "output_text", "input_image", "function_call", "function_call_output", "reasoning", "message",
    "refusal", "hologram",
]  # fmt: skip

# Text with lone surrogates, control characters and the odd data URL.
texts = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["\ud800", "a\udfffb", "data:image/png;base64,%%%", "data:image/png;base64,iVBORw0KGgo", ""]),
    st.sampled_from(["detail", "image_url", "input_image", "high", "low"]),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), texts)


def _shaped(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Objects that look like messages and parts (known keys, known roles and types), or anything."""
    known = st.fixed_dictionaries(
        {},
        optional={
            "role": st.one_of(st.sampled_from(ROLES), scalars),
            "type": st.one_of(st.sampled_from(TYPES), scalars),
            **{k: children for k in KEYS if k not in ("role", "type")},
        },
    )
    return st.one_of(
        known, st.lists(children, max_size=4), st.dictionaries(st.sampled_from(KEYS), children, max_size=3)
    )


json_values = st.recursive(scalars, _shaped, max_leaves=30)
messages = st.lists(st.one_of(_shaped(json_values), json_values), max_size=6)


def bodies(fmt: Format) -> st.SearchStrategy[dict[str, Any]]:
    turns = st.one_of(messages, json_values)
    if fmt is Format.RESPONSES:
        return st.fixed_dictionaries({"input": turns}, optional={"instructions": json_values, "tools": json_values})
    if fmt is Format.ANTHROPIC:
        return st.fixed_dictionaries({"messages": turns}, optional={"system": json_values, "tools": json_values})
    return st.fixed_dictionaries({"messages": turns}, optional={"tools": json_values})


fuzz = hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("fmt", list(Format))
@fuzz
@given(data=st.data())
def test_parse_reads_or_refuses_with_a_reason_and_renders_back_unchanged(fmt: Format, data: st.DataObject) -> None:
    body = data.draw(bodies(fmt))
    before = copy.deepcopy(body)
    adapter = adapter_for(fmt)
    try:
        conv = adapter.parse(body)
    except InvalidRequestError as exc:
        assert exc.reason in REASONS
        assert len(str(exc)) < 300  # says where and what, never the whole value
        return
    assert body == before  # parsing never changes the body
    for part in (p for m in conv.messages for p in m.parts):  # typed values, whatever the JSON held
        assert isinstance(part.text, str)
        assert all(v is None or isinstance(v, str) for v in (part.tool_id, part.tool_name))
        if part.image is not None:
            fields = (part.image.url, part.image.data, part.image.media_type, part.image.detail)
            assert all(v is None or isinstance(v, str) for v in fields)
    out = adapter.render(conv)
    assert out == before
    raws = body[MESSAGES_KEY[fmt]]
    if isinstance(raws, list):
        assert all(a is b for a, b in zip(out[MESSAGES_KEY[fmt]], raws, strict=True))


CALL_TYPES = {Format.OPENAI: "acompletion", Format.ANTHROPIC: "anthropic_messages", Format.RESPONSES: "aresponses"}
# An unknown model gets REAL_TEXT_MODEL_TOKENS as its window: small, so bodies are managed too.
HOOK = ContextHook(settings(real_text_model_tokens=600, context_speculative_condensation=False))


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def _padded(body: dict[str, Any], fmt: Format, draw: Any) -> dict[str, Any]:
    """Sometimes a long valid opening, so the fuzzed turns ride on a request that must be managed."""
    if not draw(st.booleans()):
        return body
    key = MESSAGES_KEY[fmt]
    turns = body.get(key)
    if not isinstance(turns, list):
        return body
    word = "input_text" if fmt is Format.RESPONSES else "text"
    opening = [
        {"role": "user", "content": [{"type": word, "text": f"step {k}: " + "log line 42 " * 60}]} for k in range(6)
    ]
    return {**body, key: opening + turns}


@pytest.mark.parametrize("fmt", list(Format))
@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_hook_manages_rejects_or_passes_through_with_no_error_logged(fmt: Format, data: st.DataObject) -> None:
    body = {"model": "fuzz-model", **_padded(data.draw(bodies(fmt)), fmt, data.draw)}
    sent = copy.deepcopy(body)
    handler = Records()
    logger = logging.getLogger("litellm_ctx_hook")
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        try:
            out = asyncio.run(HOOK.async_pre_call_hook(None, None, sent, CALL_TYPES[fmt]))
        except HTTPException as exc:
            assert exc.status_code == 400 and exc.detail["type"] == "context_window_exceeded"
            return
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    assert out is sent
    assert not [r for r in handler.records if r.levelno >= logging.ERROR], [r.getMessage() for r in handler.records]
    assert all(r.exc_info is None for r in handler.records)
    invalid = [r for r in handler.records if getattr(r, "reason", None) is not None]
    if invalid:  # refused: passed through with not a byte changed
        assert sent == body
        assert {r.reason for r in invalid} <= REASONS | {"invalid_conversation"}  # type: ignore[attr-defined]
