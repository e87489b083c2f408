"""Parse → typed conversation → write back, in the three formats."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from support import anthropic_body, needs_evaldata, openai_chat, responses_body

from bench import evaldata
from litellm_ctx_hook.adapters import adapter_for, detect_format
from litellm_ctx_hook.conversation import Format, PartKind, Role
from litellm_ctx_hook.planning.atoms import group_atoms


def _roundtrip(fmt: Format, body: dict[str, Any]) -> None:
    before = copy.deepcopy(body)
    adapter = adapter_for(fmt)
    conv = adapter.parse(body)
    out = adapter.render(conv)
    key = "input" if fmt is Format.RESPONSES else "messages"
    assert out == before  # identical content
    assert body == before  # the input was not mutated
    if isinstance(body[key], list):  # untouched messages are the very same objects
        assert all(a is b for a, b in zip(out[key], body[key], strict=True))


@pytest.mark.parametrize(
    ("fmt", "body"),
    [
        (Format.OPENAI, {"messages": openai_chat(3)}),
        (Format.ANTHROPIC, anthropic_body(3)),
        (Format.RESPONSES, responses_body(3)),
        (Format.RESPONSES, {"input": "just a string", "instructions": "be brief"}),
    ],
)
def test_synthetic_roundtrip(fmt: Format, body: dict[str, Any]) -> None:
    _roundtrip(fmt, body)


def test_openai_parts_and_names() -> None:
    conv = adapter_for("openai").parse(
        {
            "messages": [
                {"role": "developer", "content": "rules"},
                {
                    "role": "user",
                    "name": "ann",
                    "content": [
                        {"type": "text", "text": "look"},
                        {"type": "image_url", "image_url": {"url": "https://x/y.png", "detail": "low"}},
                        {"type": "input_audio", "input_audio": {"data": "AAA", "format": "wav"}},
                    ],
                },
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
                },
                {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "r"}]},
            ]
        }
    )
    sys_msg, user, asst, tool = conv.messages
    assert sys_msg.role is Role.SYSTEM and sys_msg.raw_role == "developer"
    assert user.name == "ann"
    assert [p.kind for p in user.parts] == [PartKind.TEXT, PartKind.IMAGE, PartKind.OPAQUE]
    assert user.parts[1].image is not None and user.parts[1].image.detail == "low"
    assert asst.tool_call_ids == ("c1",) and tool.tool_result_ids == ("c1",) and tool.text == "r"


def test_anthropic_blocks_and_system() -> None:
    body = anthropic_body(1)
    body["system"] = [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}]
    body["messages"][0] = {
        "role": "user",
        "content": [
            {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc text"}},
        ],
    }
    body["messages"][1]["content"].append({"type": "redacted_thinking", "data": "xyz"})
    conv = adapter_for("anthropic").parse(body)
    assert [p.text for p in conv.system] == ["sys"]
    assert [p.kind for p in conv.messages[0].parts] == [PartKind.TEXT, PartKind.IMAGE, PartKind.DOCUMENT]
    assert conv.messages[0].parts[2].text == "doc text"
    assert conv.messages[1].parts[-1].kind is PartKind.THINKING
    _roundtrip(Format.ANTHROPIC, body)


def test_responses_items() -> None:
    conv = adapter_for("responses").parse(responses_body(1))
    kinds = [(m.role, m.parts[0].kind) for m in conv.messages]
    assert kinds == [
        (Role.USER, PartKind.TEXT),
        (Role.ASSISTANT, PartKind.THINKING),
        (Role.ASSISTANT, PartKind.TOOL_CALL),
        (Role.TOOL, PartKind.TOOL_RESULT),
        (Role.USER, PartKind.TEXT),
    ]
    atoms = group_atoms(conv.messages)
    # reasoning + call + output form one atom
    assert [(a.start, a.end) for a in atoms.atoms] == [(0, 1), (1, 4), (4, 5)]


def test_orphans_are_reported_not_repaired() -> None:
    conv = adapter_for("openai").parse(
        {
            "messages": [
                {"role": "user", "content": "x"},
                {"role": "tool", "tool_call_id": "nope", "content": "orphan result"},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                        {"id": "b", "type": "function", "function": {"name": "g", "arguments": "{}"}},
                    ],
                },
                {"role": "tool", "tool_call_id": "a", "content": "ok"},
            ]
        }
    )
    atoms = group_atoms(conv.messages)
    assert atoms.orphan_results == ("nope",)
    assert atoms.unanswered_calls == ("b",)
    assert atoms.pair_count == 1


def test_detect_format() -> None:
    assert detect_format({"messages": openai_chat(1)}) is Format.OPENAI
    assert detect_format(anthropic_body(1)) is Format.ANTHROPIC
    assert detect_format({"messages": anthropic_body(1)["messages"]}) is Format.ANTHROPIC
    assert detect_format(responses_body(1)) is Format.RESPONSES


def _expected_pairs(sample: evaldata.Sample) -> int:
    if sample.format == "anthropic":
        return sum(
            1
            for m in sample.messages
            if isinstance(m["content"], list)
            for b in m["content"]
            if b.get("type") == "tool_use"
        )
    answered = {m.get("tool_call_id") for m in sample.messages if m.get("role") == "tool"}
    return sum(1 for m in sample.messages for c in (m.get("tool_calls") or []) if c["id"] in answered)


@needs_evaldata
def test_every_real_conversation_roundtrips_and_pairs() -> None:
    seen = 0
    for sample in evaldata.all_samples():
        fmt = Format(sample.format)
        _roundtrip(fmt, sample.body)
        conv = adapter_for(fmt).parse(sample.body)
        atoms = group_atoms(conv.messages)
        assert atoms.pair_count == _expected_pairs(sample), sample.name
        assert not atoms.orphan_results, sample.name
        # atoms tile the conversation
        assert [a.start for a in atoms.atoms] == [0] + [a.end for a in atoms.atoms[:-1]]
        assert atoms.atoms[-1].end == len(conv.messages)
        seen += 1
    assert seen > 300
