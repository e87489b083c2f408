"""Condensation with a real summariser model, side by side at the same token budget.

The model is the local Qwen2.5-Coder-1.5B-Instruct (``bench.local_model``), reached through a
LiteLLM router as ``CONDENSATION_MODEL`` would be. It reads about 57 tokens/s and writes about 9 on
the 2-core machine, so whole chats (BEAM: ~100k tokens) are out of its reach in a benchmark. We
**sample spans**: from each data set, ``SPANS`` conversations (those with the most facts in such a
slice), and from each the slice of consecutive messages of at most ``SPAN_TOKENS`` tokens, ending
with a user message, that holds the most facts. Each span is shrunk to its first message (pinned: the
task) plus 10%, 25% or 50% of the rest by three methods:

- ``trim``: ``litellm.utils.trim_messages`` (its ``max_tokens`` lowered until the output fits);
- ``extractive``: one summary of everything before the last user message, made by our extractive
  condenser, and that last message (LiteLLM's compaction shape: on a span this small our engine's
  pinned recent turns would leave the summary next to no room, so the summary alone is compared);
- ``llm``: the same shape with the model's summary, made as the engine makes it (structured prompt,
  pieces within the model's window, quality gate and mend; a rejected summary leaves the extractive
  one, and is counted); ``llm_unmended`` is the same output without the ``[also mentioned]`` line
  the gate appended, i.e. what the model wrote itself.

Facts: BEAM rubric facts and REALTALK evidence turns by the one-line content-word rule of
``bench.conversations`` (and, as ``anywhere``, by its lenient rule: a model rewrites what it
keeps); tau-bench ids and numbers of tool results and Claude Code paths and identifiers by exact
text (``bench.condensation``). Per method: share of the span's facts in the output, and facts in
the summary text per 1,000 of its tokens.

Claude Code's own compaction (``compactions`` in the data) summarised whole sessions of ~150k
tokens, which the local model would take about an hour each to read: there we compare Claude's
summary with our extractive condenser and ``trim_messages`` at the size of Claude's summary, on
the same span, and the model only on the sampled Claude spans above.

    python -m bench.llm_quality [--spans N]
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from litellm.router import Router

from litellm_ctx_hook.adapters import adapter_for
from litellm_ctx_hook.analysis.counting import TokenCounter
from litellm_ctx_hook.analysis.tokenizers import Family
from litellm_ctx_hook.condensing.condensation import Condenser
from litellm_ctx_hook.condensing.local.extractive import condense, segments_of
from litellm_ctx_hook.condensing.quality import MEND_LABEL
from litellm_ctx_hook.condensing.summarizer import LiteLLMSummarizer
from litellm_ctx_hook.conversation import Format, Message
from litellm_ctx_hook.engine.engine import ContextEngine
from litellm_ctx_hook.planning.edits import summary_text
from litellm_ctx_hook.runtime.stats import EngineStats
from litellm_ctx_hook.settings import load_settings

from . import conversations, evaldata, local_model
from .condensation import claude_facts, fit_trim, openai_view, tau_facts

SPANS = 3  # per data set
SPAN_TOKENS = 1600
FRACTIONS = (0.10, 0.25, 0.50)
SERVER_CTX = 8192


@dataclass(frozen=True)
class Span:
    name: str
    dataset: str  # beam | realtalk | tau | claude
    format: Format
    body: dict[str, Any]  # the span as a request of its format (system prompt kept)
    model: str
    facts: tuple[Any, ...]  # conversations.Fact (chat) or str (agents)

    def kept(self, text: str) -> int:
        if self.dataset in ("beam", "realtalk"):
            return conversations.facts_kept(self.facts, text)
        return sum(1 for f in self.facts if f in text)

    def kept_anywhere(self, text: str) -> int:
        """The lenient rule for chat facts (content words anywhere in the text): a model rewrites
        what it keeps, so one line rarely holds most of a turn's own words."""
        if self.dataset in ("beam", "realtalk"):
            return conversations.anywhere_kept(self.facts, text)
        return self.kept(text)


def _slices(
    count: Callable[[dict[str, Any]], int], messages: list[dict[str, Any]], start: int
) -> list[tuple[int, int]]:
    """Candidate slices ``[i, j)`` of ``messages[start:]`` of at most SPAN_TOKENS, from a user message to one."""
    sizes = [count(m) for m in messages]
    out = []
    for i in range(start, len(messages)):
        if messages[i].get("role") != "user":  # a span starts with a user turn (never a tool result)
            continue
        total = 0
        best = None
        for j in range(i, len(messages)):
            total += sizes[j]
            if total > SPAN_TOKENS:
                break
            if messages[j].get("role") == "user" and j - i >= 5:
                best = j + 1
        if best is not None:
            out.append((i, best))
    return out


def _best_slice(
    messages: list[dict[str, Any]], head: int, count: Callable[[dict[str, Any]], int], facts_in: Callable[[str], int]
) -> tuple[int, int, int] | None:
    best: tuple[int, int, int] | None = None
    for i, j in _slices(count, messages, head)[::3]:  # every third start: enough, and three times faster
        n = facts_in(json.dumps(messages[i:j]))
        if best is None or n > best[2]:
            best = (i, j, n)
    return best


def chat_spans(dataset: str, counter: TokenCounter) -> list[Span]:
    openai = adapter_for(Format.OPENAI)

    def count(m: dict[str, Any]) -> int:
        return counter.count(openai.parse({"messages": [m]}), "gpt-4o").total

    found = []
    for case in conversations.load_cases(dataset):
        if not case.facts:
            continue
        messages = case.messages
        best = _best_slice(messages, 0, count, partial(conversations.facts_kept, case.facts))
        if best is None:
            continue
        i, j, _ = best
        text = conversations.text_of(messages[i:j])
        facts = tuple(f for f in case.facts if conversations.facts_kept([f], text))
        found.append(
            Span(f"{dataset}:{case.name}:{i}-{j}", dataset, Format.OPENAI, {"messages": messages[i:j]}, "gpt-4o", facts)
        )
    return sorted(found, key=lambda s: (-len(s.facts), s.name))[:SPANS]


def agent_spans(dataset: str, counter: TokenCounter) -> list[Span]:
    samples = evaldata.tau_runs() if dataset == "tau" else evaldata.claude_sessions()
    fmt = Format.OPENAI if dataset == "tau" else Format.ANTHROPIC
    adapter = adapter_for(fmt)
    facts_of = tau_facts if dataset == "tau" else claude_facts
    found = []
    for sample in samples:
        if dataset == "claude" and (sample.extra.get("is_subagent") or len(sample.messages) < 100):
            continue
        messages = sample.messages
        head = 1 if messages and messages[0].get("role") == "system" else 0

        def count(m: dict[str, Any], model: str = sample.model) -> int:
            return counter.count(adapter.parse({"messages": [m]}), model).total

        def facts(msgs: list[dict[str, Any]]) -> set[str]:
            return facts_of(adapter.parse({"messages": msgs}).messages)

        best = None
        for i, j in _slices(count, messages, head)[::4]:
            if dataset == "claude" and i == 0:
                continue
            n = len(facts(messages[i:j]))
            if best is None or n > best[2]:
                best = (i, j, n)
        if best is None:
            continue
        i, j, _ = best
        span = messages[:head] + messages[i:j]
        found.append(
            Span(
                f"{dataset}:{sample.name}:{i}-{j}",
                dataset,
                fmt,
                {"messages": span},
                sample.model,
                tuple(sorted(facts(messages[i:j]))),
            )
        )
        if dataset == "claude" and len(found) >= SPANS:
            break
    return sorted(found, key=lambda s: (-len(s.facts), s.name))[:SPANS]


class Methods:
    def __init__(self, server: local_model.LocalServer | None) -> None:
        self.settings = load_settings(condensation_target_ratio=1.0, condensation_min_messages=1)
        self.counter = TokenCounter(self.settings)
        self.bench = conversations.Bench()
        self.llm_calls = 0
        self.llm_seconds = 0.0
        self.llm_rejected = 0
        self.condenser: Condenser | None = None
        self.summarizer: LiteLLMSummarizer | None = None
        if server is not None:
            settings = load_settings(condensation_model="local", condensation_timeout=900)
            router = Router(
                model_list=[
                    {
                        "model_name": "local",
                        "litellm_params": server.litellm_params(),
                        "model_info": {"max_input_tokens": server.n_ctx},
                    }
                ]
            )
            self.summarizer = LiteLLMSummarizer("local", router=router, settings=settings)
            self.condenser = Condenser(settings, self.counter, EngineStats())

    def budget(self, span: Span, fraction: float) -> int:
        conv = adapter_for(span.format).parse(span.body)
        count = self.counter.count(conv, span.model)
        first = count.messages[0] if count.messages else 0
        pinned = count.system + first
        return pinned + int((count.total - pinned) * fraction)

    def trim(self, span: Span, budget: int, engine: ContextEngine) -> tuple[str, str]:
        sample = evaldata.Sample(
            span.name, "openai" if span.format is Format.OPENAI else "anthropic", span.body, span.model
        )
        conv = fit_trim(openai_view(sample), sample, budget, engine)
        return "\n".join(p.text for m in conv.messages for p in m.parts), ""

    def openai_messages(self, span: Span) -> list[dict[str, Any]]:
        if span.format is Format.OPENAI:
            return list(span.body["messages"])
        return openai_view(evaldata.Sample(span.name, "anthropic", span.body, span.model))

    async def shape(self, span: Span, budget: int, llm: bool) -> tuple[str, str]:
        """A summary of everything before the last user message, then that message, within ``budget``."""
        messages = _ending_with_user(self.openai_messages(span))
        system = [m for m in messages if m.get("role") == "system"]  # kept verbatim, as trim keeps it
        head, last = [m for m in messages[:-1] if m.get("role") != "system"], messages[-1]
        parsed = adapter_for(Format.OPENAI).parse({"messages": head}).messages

        def build(summary: str) -> list[dict[str, Any]]:
            return [*system, {"role": "user", "content": summary_text(summary, len(head))}, last]

        room = budget - self.bench.total(build(""))
        for _ in range(4):
            if room <= 0:
                break
            summary = await self._summary(parsed, room, llm)
            tokens = self.bench.total(build(summary))
            if tokens <= budget:
                return conversations.text_of(build(summary)), summary
            room -= tokens - budget
        return conversations.text_of([last]), ""

    async def _summary(self, span: Sequence[Message], room: int, llm: bool) -> str:
        if llm:
            assert self.condenser is not None and self.summarizer is not None
            started = time.perf_counter()
            calls = self.condenser.stats.summarizer_calls
            text = await self.condenser.writer.write(span, room, self.summarizer, Family.O200K)
            self.llm_seconds += time.perf_counter() - started
            self.llm_calls += self.condenser.stats.summarizer_calls - calls
            if text is not None:
                return text
            self.llm_rejected += 1
        return condense(segments_of(span), room, self.bench.count_text)


def _unmended(text: str) -> str:
    return "\n".join(line for line in text.split("\n") if not line.startswith(MEND_LABEL))


def _ending_with_user(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    last = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=len(messages) - 1)
    return messages[: last + 1]


async def run_spans(spans: Sequence[Span], methods: Methods, with_llm: bool) -> dict[str, Any]:
    rows: dict[str, Any] = {}
    count = methods.bench.count_text
    for fraction in FRACTIONS:
        totals: dict[str, dict[str, dict[str, float]]] = {}
        for span in spans:
            budget = methods.budget(span, fraction)
            outs = {
                "trim": methods.trim(span, budget, ContextEngine(methods.settings)),
                "extractive": await methods.shape(span, budget, llm=False),
            }
            if with_llm:
                started = time.perf_counter()
                outs["llm"] = await methods.shape(span, budget, llm=True)
                print(f"  {span.name} @ {fraction:.0%}: llm {time.perf_counter() - started:.0f}s", file=sys.stderr)
            if "llm" in outs:  # the model's own text, before the gate appended the facts it missed
                text, summary = outs["llm"]
                outs["llm_unmended"] = (_unmended(text), _unmended(summary))
            t = totals.setdefault(span.dataset, {})
            for method, (text, summary) in outs.items():
                m = t.setdefault(method, {})
                m["facts"] = m.get("facts", 0) + len(span.facts)
                m["kept"] = m.get("kept", 0) + span.kept(text)
                m["anywhere"] = m.get("anywhere", 0) + span.kept_anywhere(text)
                if summary:
                    m["summary_kept"] = m.get("summary_kept", 0) + span.kept(summary)
                    m["summary_tokens"] = m.get("summary_tokens", 0) + count(summary)
        for dataset, by_method in totals.items():
            row = rows.setdefault(dataset, {})
            cells = {}
            for method, m in by_method.items():
                cell = {"kept": round(m["kept"] / max(1, m["facts"]), 3)}
                if dataset in ("beam", "realtalk"):
                    cell["anywhere"] = round(m["anywhere"] / max(1, m["facts"]), 3)
                if m.get("summary_tokens"):
                    cell["per_1k_summary_tokens"] = round(1000 * m["summary_kept"] / m["summary_tokens"], 1)
                cells[method] = cell
            row[f"{fraction:.0%}"] = cells
    return rows


def claude_compactions(methods: Methods) -> list[dict[str, Any]]:
    """Claude Code's own summary of each compacted span against ours at the same size."""
    out = []
    adapter = adapter_for(Format.ANTHROPIC)
    count = methods.bench.count_text
    for sample in evaldata.claude_sessions():
        for c in sample.extra.get("compactions") or []:
            idx, summary = c.get("summary_message_index"), c.get("summary")
            if not idx or not summary:
                continue
            span_msgs = sample.messages[:idx]
            parsed = adapter.parse({"messages": span_msgs}).messages
            facts = claude_facts(parsed)
            if not facts:
                continue
            budget = count(summary)
            ours = condense(segments_of(parsed), budget, count)
            trimmed_sample = evaldata.Sample(sample.name, "anthropic", {"messages": span_msgs}, sample.model)
            trimmed = fit_trim(openai_view(trimmed_sample), trimmed_sample, budget, ContextEngine(methods.settings))
            trim_text = "\n".join(p.text for m in trimmed.messages for p in m.parts)

            def row(text: str, facts: set[str] = facts) -> dict[str, Any]:
                kept = sum(1 for f in facts if f in text)
                return {
                    "kept": round(kept / len(facts), 3),
                    "per_1k_tokens": round(1000 * kept / max(1, count(text)), 1),
                }

            out.append(
                {
                    "session": sample.name,
                    "span_messages": idx,
                    "span_tokens": c.get("pre_tokens"),
                    "facts": len(facts),
                    "summary_tokens": budget,
                    "claude_code": row(summary),
                    "extractive": row(ours),
                    "trim": row(trim_text),
                }
            )
    return out


async def main_async(spans_per_set: int, with_llm: bool) -> dict[str, Any]:
    global SPANS
    SPANS = spans_per_set
    logging.getLogger("LiteLLM").setLevel(logging.CRITICAL)
    counter = TokenCounter(load_settings())
    spans = [
        *chat_spans("beam", counter),
        *chat_spans("realtalk", counter),
        *agent_spans("tau", counter),
        *agent_spans("claude", counter),
    ]
    report: dict[str, Any] = {
        "spans": [{"name": s.name, "facts": len(s.facts)} for s in spans],
    }
    started = time.perf_counter()
    if with_llm:
        with local_model.serve(ctx=SERVER_CTX) as server:
            methods = Methods(server)
            report["by_budget"] = await run_spans(spans, methods, with_llm=True)
    else:
        methods = Methods(None)
        report["by_budget"] = await run_spans(spans, methods, with_llm=False)
    report["llm_calls"] = methods.llm_calls
    report["llm_rejected"] = methods.llm_rejected
    report["llm_seconds"] = round(methods.llm_seconds)
    report["claude_code_compactions"] = claude_compactions(methods)
    report["seconds"] = round(time.perf_counter() - started)
    return report


def main() -> None:
    args = sys.argv[1:]
    spans = SPANS
    if "--spans" in args:
        spans = int(args[args.index("--spans") + 1])
    if not evaldata.available():
        print("../shared/evaldata is not present: nothing to measure")
        return
    print(json.dumps(asyncio.run(main_async(spans, with_llm="--no-llm" not in args)), indent=2))


if __name__ == "__main__":
    main()
