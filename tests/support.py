"""Builders shared by the tests: settings, engines and small conversations in the three formats."""

from __future__ import annotations

import base64
import struct
import zlib
from typing import Any

import pytest

from bench import evaldata
from litellm_ctx_hook.settings import Settings, load_settings

needs_evaldata = pytest.mark.skipif(not evaldata.available(), reason="../shared/evaldata is not present")


def settings(**overrides: Any) -> Settings:
    return load_settings(**overrides)


def png_data_url(width: int, height: int) -> str:
    """A real (tiny, valid) PNG header of the given size as a data URL."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return "data:image/png;base64," + base64.b64encode(png).decode()


def openai_chat(turns: int, words: int = 50) -> list[dict[str, Any]]:
    """System prompt, a task, then ``turns`` tool-using exchanges."""
    msgs: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a careful assistant."},
        {"role": "user", "content": "Please fix the failing build in repo acme/widgets."},
    ]
    for k in range(turns):
        msgs.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"call_{k}",
                        "type": "function",
                        "function": {"name": "bash", "arguments": f'{{"cmd": "ls {k}"}}'},
                    }
                ],
            }
        )
        msgs.append({"role": "tool", "tool_call_id": f"call_{k}", "content": f"file_{k}.py " + "lorem ipsum " * words})
        msgs.append({"role": "assistant", "content": f"Step {k} done, found issue ID-{k:04d}."})
        msgs.append({"role": "user", "content": f"Continue with step {k + 1}."})
    return msgs


def anthropic_body(turns: int, words: int = 50) -> dict[str, Any]:
    msgs: list[dict[str, Any]] = [{"role": "user", "content": "Please fix the failing build in repo acme/widgets."}]
    for k in range(turns):
        msgs.append(
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": f"I should look at step {k}.", "signature": "sig"},
                    {"type": "tool_use", "id": f"toolu_{k}", "name": "Bash", "input": {"command": f"ls {k}"}},
                ],
            }
        )
        msgs.append(
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": f"toolu_{k}", "content": f"file_{k}.py " + "lorem " * words}
                ],
            }
        )
    msgs.append({"role": "assistant", "content": "All steps done."})
    msgs.append({"role": "user", "content": "Thanks, now summarise what changed."})
    return {"model": "claude-sonnet-4-5", "max_tokens": 1024, "system": "You are a coding agent.", "messages": msgs}


def responses_body(turns: int, words: int = 50) -> dict[str, Any]:
    items: list[dict[str, Any]] = [{"role": "user", "content": "Please fix the failing build."}]
    for k in range(turns):
        items.append(
            {"type": "reasoning", "id": f"rs_{k}", "summary": [{"type": "summary_text", "text": f"think {k}"}]}
        )
        items.append(
            {"type": "function_call", "call_id": f"fc_{k}", "name": "bash", "arguments": f'{{"cmd": "ls {k}"}}'}
        )
        items.append(
            {"type": "function_call_output", "call_id": f"fc_{k}", "output": f"file_{k}.py " + "lorem " * words}
        )
    items.append({"role": "user", "content": [{"type": "input_text", "text": "Now summarise."}]})
    return {"model": "gpt-4.1", "instructions": "You are a coding agent.", "input": items}


def reservation_doc() -> dict[str, Any]:
    """A tool result as JSON: scalars, a list of objects, a list of scalars, a multi-line string."""
    return {
        "reservation_id": "4WQ150",
        "insurance": False,
        "flights": [{"flight_number": "HAT136", "price": 152.5}, {"flight_number": "HAT039", "price": 103}],
        "tags": ["a", 1, None],
        "note": "line one\nline two",
        "empty": {},
    }
