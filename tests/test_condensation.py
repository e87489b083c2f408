"""Condensation through the engine: what stays verbatim after the condensed history."""

from __future__ import annotations

from typing import Any

from support import openai_chat, settings

from litellm_ctx_hook.conversation import Format
from litellm_ctx_hook.engine.engine import ContextEngine
from litellm_ctx_hook.planning.edits import SUMMARY_OPEN
from litellm_ctx_hook.planning.plan import CHAT_RECENT_MESSAGES

PLACES = ["Lisbon", "Aspen", "Osaka", "Miami", "Quito", "Oslo", "Hanoi", "Lima", "Cairo", "Perth"]


def _chat(turns: int) -> list[dict[str, Any]]:
    msgs = []
    for k in range(turns):
        role = "user" if k % 2 == 0 else "assistant"
        msgs.append({"role": role, "content": f"I went to {PLACES[k % 10]} on day {k} and loved the food there."})
    return msgs


def _after_summary(body: Any) -> list[dict[str, Any]]:
    messages = list(body["messages"])
    at = next(i for i, m in enumerate(messages) if str(m.get("content") or "").startswith(SUMMARY_OPEN))
    return messages[at + 1 :]


async def _managed(messages: list[dict[str, Any]], share: float) -> Any:
    engine = ContextEngine(settings(condensation_target_ratio=1.0, condensation_min_messages=1))
    total = (await engine.manage({"messages": messages}, Format.OPENAI, "gpt-4o", observe_only=True)).tokens_before
    out = await engine.manage({"messages": messages}, Format.OPENAI, "gpt-4o", limit=int(total * share))
    await engine.drain()
    assert out.changed
    return out


async def test_a_chat_keeps_few_recent_messages_verbatim_and_condenses_the_rest() -> None:
    keep_recent = settings().condensation_keep_recent  # the pinned tail, in atoms (a chat's are messages)
    out = await _managed(_chat(300), 0.25)
    verbatim = _after_summary(out.body)
    assert len(verbatim) <= CHAT_RECENT_MESSAGES + keep_recent
    assert verbatim[-1]["content"] == _chat(300)[-1]["content"]


async def test_an_agent_run_keeps_its_recent_tool_traffic_by_tokens_not_by_the_chat_cap() -> None:
    out = await _managed(openai_chat(60, words=20), 0.25)
    assert len(_after_summary(out.body)) > CHAT_RECENT_MESSAGES + settings().condensation_keep_recent
