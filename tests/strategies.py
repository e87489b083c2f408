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


def _tool_output(n: int, k: int) -> str:
    """About ``n`` tokens of a tool's output: numbered lines that differ a little each."""
    return "\n".join(
        f"{i:4d} step_{k}_{i} status=ok value={i * k} path=src/m{k}/f{i % 7}.py" for i in range(n // 18 + 1)
    )


@st.composite
def agent_with_large_head(draw: st.DrawFn) -> tuple[dict[str, Any], str, float]:
    """An agent's request whose pinned head (system prompt, tools, the task) is a large share of
    the room: the body, its route (``openai``, ``anthropic``, ``responses``) and that share
    (30–70%), from which the test derives the limit. Tool outputs of 40–1,500 tokens, one or two
    calls a turn, sometimes a user message after the newest result."""
    route = draw(st.sampled_from(["openai", "anthropic", "responses"]))
    system = "You are a coding agent. " + "Follow the rules of the repository. " * draw(st.integers(40, 400))
    tools = [
        {"name": f"tool{t}", "description": "Reads a file of the repository. " * draw(st.integers(5, 80))}
        for t in range(draw(st.integers(1, 4)))
    ]
    task = "Fix the failing build. " + "Context of the task. " * draw(st.integers(0, 150))
    turns: list[list[int]] = draw(
        st.lists(st.lists(st.integers(40, 1500), min_size=1, max_size=2), min_size=1, max_size=12)
    )
    follow_up = draw(st.booleans())
    share = draw(st.floats(0.3, 0.7))
    n = 0
    if route == "anthropic":
        msgs: list[dict[str, Any]] = [{"role": "user", "content": task}]
        for sizes in turns:
            ids = [f"toolu_{n + j}" for j in range(len(sizes))]
            n += len(sizes)
            msgs.append(
                {
                    "role": "assistant",
                    "content": [
                        {"type": "text", "text": "Reading."},
                        *({"type": "tool_use", "id": i, "name": "tool0", "input": {"path": i}} for i in ids),
                    ],
                }
            )
            msgs.append(
                {
                    "role": "user",
                    "content": [
                        {"type": "tool_result", "tool_use_id": i, "content": _tool_output(s, n)}
                        for i, s in zip(ids, sizes, strict=True)
                    ],
                }
            )
        if follow_up:
            msgs += [{"role": "assistant", "content": "Done reading."}, {"role": "user", "content": "Go on."}]
        anthropic_tools = [{**t, "input_schema": {"type": "object"}} for t in tools]
        body = {"model": "m", "max_tokens": 1024, "system": system, "tools": anthropic_tools, "messages": msgs}
        return body, route, share
    if route == "openai":
        msgs = [{"role": "system", "content": system}, {"role": "user", "content": task}]
        for sizes in turns:
            ids = [f"call_{n + j}" for j in range(len(sizes))]
            n += len(sizes)
            calls = [{"id": i, "type": "function", "function": {"name": "tool0", "arguments": "{}"}} for i in ids]
            msgs.append({"role": "assistant", "content": "Reading.", "tool_calls": calls})
            msgs += [
                {"role": "tool", "tool_call_id": i, "content": _tool_output(s, n)}
                for i, s in zip(ids, sizes, strict=True)
            ]
        if follow_up:
            msgs += [{"role": "assistant", "content": "Done reading."}, {"role": "user", "content": "Go on."}]
        openai_tools = [{"type": "function", "function": {**t, "parameters": {"type": "object"}}} for t in tools]
        return {"model": "m", "messages": msgs, "tools": openai_tools}, route, share
    items: list[dict[str, Any]] = [{"role": "user", "content": task}]
    for sizes in turns:
        ids = [f"fc_{n + j}" for j in range(len(sizes))]
        n += len(sizes)
        items += [{"type": "function_call", "call_id": i, "name": "tool0", "arguments": "{}"} for i in ids]
        items += [
            {"type": "function_call_output", "call_id": i, "output": _tool_output(s, n)}
            for i, s in zip(ids, sizes, strict=True)
        ]
    if follow_up:
        items += [
            {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Done reading."}]},
            {"role": "user", "content": "Go on."},
        ]
    responses_tools = [{"type": "function", **t, "parameters": {"type": "object"}} for t in tools]
    return {"model": "m", "instructions": system, "input": items, "tools": responses_tools}, route, share
