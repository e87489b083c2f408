"""Hypothesis strategies: valid conversations in the three formats, with tool pairs, images,
thinking blocks, empty and huge messages."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from support import png_data_url

words = st.lists(
    st.sampled_from(
        [
            "alpha",
            "beta",
            "order",
            "ID-4521",
            "src/app/main.py",
            "error",
            "the",
            "and",
            "42",
            "3.14",
            "user_99",
            "https://example.com/a",
            "refund",
            "Paris",
            "HAT136",
            "",
            "\n",
            "über",
            "🙂",
        ]
    ),
    max_size=60,
).map(" ".join)
huge = st.integers(2000, 6000).map(lambda n: "data " * n)
text = st.one_of(words, words, words, st.just(""), huge)


@st.composite
def openai_conversation(draw: st.DrawFn) -> dict[str, Any]:
    msgs: list[dict[str, Any]] = []
    if draw(st.booleans()):
        msgs.append({"role": "system", "content": draw(words)})
    msgs.append({"role": "user", "content": draw(words) or "task"})
    n = 0
    for _ in range(draw(st.integers(0, 14))):
        kind = draw(st.sampled_from(["user", "assistant", "tools", "tools", "image"]))
        if kind == "user":
            msgs.append({"role": "user", "content": draw(text)})
        elif kind == "assistant":
            msgs.append({"role": "assistant", "content": draw(text)})
        elif kind == "image":
            msgs.append(
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": draw(words)},
                        {"type": "image_url", "image_url": {"url": png_data_url(draw(st.integers(64, 3000)), 512)}},
                    ],
                }
            )
        else:
            calls = []
            for _ in range(draw(st.integers(1, 3))):
                n += 1
                calls.append(
                    {
                        "id": f"call_{n}",
                        "type": "function",
                        "function": {"name": draw(st.sampled_from(["bash", "read"])), "arguments": '{"x": 1}'},
                    }
                )
            msgs.append({"role": "assistant", "content": draw(st.one_of(st.none(), words)), "tool_calls": calls})
            for c in calls:
                msgs.append({"role": "tool", "tool_call_id": c["id"], "content": draw(text)})
    msgs.append({"role": "user", "content": draw(words) or "go on"})
    return {"model": "gpt-4o", "messages": msgs}


@st.composite
def anthropic_conversation(draw: st.DrawFn) -> dict[str, Any]:
    msgs: list[dict[str, Any]] = [{"role": "user", "content": draw(words) or "task"}]
    n = 0
    for _ in range(draw(st.integers(0, 10))):
        if draw(st.booleans()):
            msgs.append({"role": "assistant", "content": draw(text) or "ok"})
            msgs.append({"role": "user", "content": [{"type": "text", "text": draw(text) or "next"}]})
            continue
        blocks: list[dict[str, Any]] = []
        if draw(st.booleans()):
            blocks.append({"type": "thinking", "thinking": draw(text), "signature": "sig"})
        if draw(st.booleans()):
            blocks.append({"type": "text", "text": draw(words) or "working"})
        ids = []
        for _ in range(draw(st.integers(1, 3))):
            n += 1
            ids.append(f"toolu_{n}")
            blocks.append({"type": "tool_use", "id": ids[-1], "name": "Bash", "input": {"command": draw(words)}})
        msgs.append({"role": "assistant", "content": blocks})
        results: list[dict[str, Any]] = [{"type": "tool_result", "tool_use_id": i, "content": draw(text)} for i in ids]
        if draw(st.integers(0, 4)) == 0:
            results.append(
                {
                    "type": "image",
                    "source": {
                        "type": "base64",
                        "media_type": "image/png",
                        "data": png_data_url(800, 600).split(",", 1)[1],
                    },
                }
            )
        msgs.append({"role": "user", "content": results})
    msgs.append({"role": "assistant", "content": draw(words) or "done"})
    msgs.append({"role": "user", "content": draw(words) or "thanks"})
    body: dict[str, Any] = {"model": "claude-sonnet-4-5", "max_tokens": 256, "messages": msgs}
    if draw(st.booleans()):
        body["system"] = draw(words) or "be helpful"
    return body


@st.composite
def responses_conversation(draw: st.DrawFn) -> dict[str, Any]:
    items: list[dict[str, Any]] = [{"role": "user", "content": draw(words) or "task"}]
    n = 0
    for _ in range(draw(st.integers(0, 10))):
        kind = draw(st.sampled_from(["message", "calls", "calls"]))
        if kind == "message":
            items.append(
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": draw(text)}]}
            )
            items.append({"role": "user", "content": [{"type": "input_text", "text": draw(text)}]})
            continue
        if draw(st.booleans()):
            items.append(
                {"type": "reasoning", "id": f"rs_{n}", "summary": [{"type": "summary_text", "text": draw(text)}]}
            )
        ids = []
        for _ in range(draw(st.integers(1, 2))):
            n += 1
            ids.append(f"fc_{n}")
            items.append({"type": "function_call", "call_id": ids[-1], "name": "bash", "arguments": '{"c": 1}'})
        for i in ids:
            items.append({"type": "function_call_output", "call_id": i, "output": draw(text)})
    items.append({"role": "user", "content": draw(words) or "go"})
    body: dict[str, Any] = {"model": "gpt-4.1", "input": items}
    if draw(st.booleans()):
        body["instructions"] = draw(words) or "be brief"
    return body
