"""Condensation through the engine: what stays verbatim after the condensed history."""

from __future__ import annotations

from typing import Any

from support import openai_chat, settings

from litellm_ctx_hook.analysis.counting import TokenCounter
from litellm_ctx_hook.analysis.tokenizers import Family
from litellm_ctx_hook.condensing.summarizer import SummaryRequest
from litellm_ctx_hook.condensing.summary_writer import ModelWriter, transcript_lines
from litellm_ctx_hook.conversation import Format, Message, Part, PartKind, Role
from litellm_ctx_hook.engine.engine import ContextEngine
from litellm_ctx_hook.planning.edits import SUMMARY_OPEN
from litellm_ctx_hook.planning.plan import CHAT_RECENT_MESSAGES
from litellm_ctx_hook.runtime.stats import EngineStats
from litellm_ctx_hook.testing.fake_summarizer import KeywordSummarizer

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


# -- what the summariser model reads ---------------------------------------------------------------

NOTE = "2026-11-03T10:00:55.001Z NOTE ticket OPS-4411: retry budget moved to the canary pool"


def _log_span() -> list[Message]:
    lines = [
        f"2026-11-03T10:00:{i % 60:02d}.{i:03d}Z INFO worker-{i % 8 + 1} batch={i} sha={i * 7919:012x} status=ok"
        for i in range(110)
    ]
    text = "\n".join([*lines[:55], NOTE, *lines[55:]])
    call = Part(PartKind.TOOL_CALL, "bash(cat worker.log)", tool_id="t1", tool_name="bash")
    return [
        Message(Role.USER, (Part(PartKind.TEXT, "Read the log and tell me what is unusual."),)),
        Message(Role.ASSISTANT, (call,)),
        Message(Role.TOOL, (Part(PartKind.TOOL_RESULT, text, tool_id="t1"),)),
    ]


def test_the_transcript_collapses_tool_output_and_keeps_its_rare_lines() -> None:
    lines = transcript_lines(_log_span())
    assert lines[0] == "[user] Read the log and tell me what is unusual."
    result = lines[2].split("\n")
    assert result[0].startswith("[tool result bash] ×110 like: ") and "status=ok" in result[0]
    assert result[1:] == [NOTE]


async def test_the_summariser_reads_the_collapsed_transcript() -> None:
    class Recording(KeywordSummarizer):
        def __init__(self) -> None:
            super().__init__()
            self.transcripts: list[str] = []

        async def summarize(self, req: SummaryRequest, timeout: float) -> str:
            self.transcripts.append(req.transcript)
            return await super().summarize(req, timeout)

    s = settings()
    writer = ModelWriter(s, TokenCounter(s), EngineStats())
    model = Recording()
    span = _log_span()
    await writer.write(span, 400, model, Family.O200K)
    assert len(model.transcripts) == 1
    sent = model.transcripts[0]
    assert NOTE in sent and "×110 like: " in sent
    raw = "\n".join(p.text for m in span for p in m.parts)
    assert len(sent) * 5 < len(raw)  # a fraction of the tokens to read
