"""What the client tests share: the proxy's model aliases, the session rows, skip-or-fail."""

from __future__ import annotations

import os
from typing import Any, NoReturn

import pytest
from e2e.proxy import model_entry

from litellm_ctx_hook.testing.agent_report import SessionReport
from litellm_ctx_hook.testing.agents import Agent

CLAUDE_MODEL = "anthropic/claude-sonnet-4-5-20250929"
OPENAI_MODEL = "openai/gpt-4o"
WINDOWS = (11_000, 16_000, 64_000, 72_000, 128_000)
REPORTS: list[SessionReport] = []


def alias(agent: Agent, window: int) -> str:
    """The model name a client asks for: its family's name (clients pick defaults by it) and the window."""
    base = "claude-sonnet-4-5" if agent.route == "/v1/messages" else "gpt-4o"
    return f"{base}-{window // 1000}k"


def model_list(upstream_url: str) -> list[dict[str, Any]]:
    entries = []
    for base, model in (("claude-sonnet-4-5", CLAUDE_MODEL), ("gpt-4o", OPENAI_MODEL)):
        for window in WINDOWS:
            name = f"{base}-{window // 1000}k"
            entries.append(model_entry(name, model, upstream_url, model_info={"max_input_tokens": window}))
    return entries


def agent_unavailable(message: str) -> NoReturn:
    if os.environ.get("CI", "").lower() in ("1", "true"):
        pytest.fail(f"{message} (CI=true requires the agent clients)", pytrace=False)
    pytest.skip(message)
