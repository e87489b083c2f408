"""Fact retention and latency of condensation, side by side with ``litellm.utils.trim_messages``.

For each conversation and a budget of the system prompt plus 25% or 50% of the rest of its
tokens, both methods shrink it to the budget; we then measure the share of *facts* still in the
output (for the tau-bench runs the ids and numbers in tool results, for the Claude sessions the
file paths and identifiers), of two sets: those of the span our engine condensed, and those of
everything but the system prompt and the last four messages. We also count tool pairs each
method broke, and measure the condenser alone on the same spans given the whole budget. Latency: one management call
(extractive condenser) on the largest Claude session at a 32k window, as a ratio to one cold
count of that session (the best of 15 of each, taken in turn).

    python -m bench.condensation
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from collections.abc import Iterable, Sequence
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from litellm.llms.anthropic.pass_through.adapters.transformation import LiteLLMAnthropicMessagesAdapter
from litellm.utils import trim_messages

from litellm_ctx_hook.adapters import adapter_for
from litellm_ctx_hook.analysis.counting import TokenCounter
from litellm_ctx_hook.analysis.salience import key_tokens
from litellm_ctx_hook.analysis.tokenizers import Family
from litellm_ctx_hook.condensing.local.extractive import condense, segments_of
from litellm_ctx_hook.conversation import Format, Message, PartKind
from litellm_ctx_hook.engine.engine import ContextEngine
from litellm_ctx_hook.errors import ContextWindowExceededError
from litellm_ctx_hook.planning.atoms import group_atoms
from litellm_ctx_hook.settings import load_settings

from . import evaldata

KEEP_LAST = 4
LATENCY_PAIRS = 15
PATH = re.compile(r"/")
IDENT = re.compile(r"_|[a-z][A-Z]|[A-Za-z]\d|\d[A-Za-z]")


def tau_facts(messages: Sequence[Message]) -> set[str]:
    """Ids and numbers in tool results."""
    return {
        t
        for m in messages
        for p in m.parts
        if p.kind is PartKind.TOOL_RESULT
        for t in key_tokens(p.text)
        if any(c.isdigit() for c in t)
    }


def claude_facts(messages: Sequence[Message]) -> set[str]:
    """File paths and identifiers anywhere in the messages."""
    return {t for m in messages for p in m.parts for t in key_tokens(p.text) if PATH.search(t) or IDENT.search(t)}


def text_of(messages: Iterable[Message]) -> str:
    return "\n".join(p.text for m in messages for p in m.parts)


def broken_pairs(messages: Sequence[Message]) -> int:
    atoms = group_atoms(messages)
    return len(atoms.orphan_results) + len(atoms.unanswered_calls)


def shrinkable(conv_messages: Sequence[Message]) -> list[Message]:
    body = [m for m in conv_messages if m.role.value != "system"]
    return body[:-KEEP_LAST] if len(body) > KEEP_LAST else []


def openai_view(sample: evaldata.Sample) -> list[dict[str, Any]]:
    """The messages as ``trim_messages`` takes them: OpenAI chat (Claude sessions go through
    LiteLLM's own Anthropic → OpenAI translation)."""
    messages = json.loads(json.dumps(sample.messages))
    if sample.format == "openai":
        return list(messages)
    make: Any = LiteLLMAnthropicMessagesAdapter  # untyped in some LiteLLM releases
    adapter = make()
    return [dict(m) for m in adapter.translate_anthropic_messages_to_openai(messages)]


def fit_trim(messages: list[dict[str, Any]], sample: evaldata.Sample, budget: int, engine: ContextEngine) -> Any:
    """``trim_messages`` at the same budget: its own counter undercounts (Claude by ~25%, tool calls
    not at all), so lower its ``max_tokens`` until the output fits the budget by our count."""
    openai = adapter_for(Format.OPENAI)
    ask = budget
    conv = openai.parse({"messages": []})  # what is left when trim_messages cannot produce anything
    for _ in range(12):
        try:
            trimmed = trim_messages(json.loads(json.dumps(messages)), model=sample.model.split("/")[-1], max_tokens=ask)
        except Exception:  # it crashes on some inputs (e.g. content None when it shortens a message)
            ask = int(ask * 0.85)
            continue
        conv = openai.parse({"messages": trimmed})
        if engine.counter.count(conv, sample.model).total <= budget or ask < 64:
            return conv
        ask = int(ask * 0.85)
    return conv


def condensed_span(metadata: dict[str, Any], messages: Sequence[Message]) -> list[Message]:
    """The original messages our engine replaced by summaries (empty when it did not condense)."""
    spans = metadata.get("summary", {}).get("summaries", [])
    return [m for d in spans for m in messages[d["span"][0] : d["span"][1]]]


def kept(facts: set[str], text: str) -> float:
    return sum(1 for f in facts if f in text) / len(facts)


def run_case(sample: evaldata.Sample, fraction: float, engine: ContextEngine, facts_of: Any) -> dict[str, Any] | None:
    """Both methods at one budget. Two fact sets: those of the span our engine condensed (the
    issue's measure) and those of everything but the system prompt and the last four messages."""
    fmt = Format(sample.format)
    adapter = adapter_for(fmt)
    conv = adapter.parse(sample.body)
    count = engine.counter.count(conv, sample.model)
    system = count.system + sum(
        n for m, n in zip(conv.messages, count.messages, strict=True) if m.role.value == "system"
    )
    # Both methods keep the system prompt whole: the budget is the system prompt plus a share of the rest.
    budget = system + int((count.total - system) * fraction)
    facts = facts_of(shrinkable(conv.messages))
    if not facts:
        return None
    trim_conv = fit_trim(openai_view(sample), sample, budget, engine)
    trim_text = text_of(trim_conv.messages)
    row: dict[str, Any] = {
        "trim_kept": kept(facts, trim_text),
        "trim_tokens": engine.counter.count(trim_conv, sample.model).total / budget,
        "trim_broken": broken_pairs(trim_conv.messages),
    }
    try:
        ours_out = asyncio.run(engine.manage(sample.body, fmt, sample.model, limit=budget))
    except ContextWindowExceededError:
        # The pinned turns alone exceed the budget: we reject (a 400) rather than drop them.
        row.update(ours_kept=0.0, ours_rejected=1, ours_broken=0)
        return row
    ours_conv = adapter.parse(ours_out.body)
    ours_text = text_of(ours_conv.messages)
    row.update(
        ours_kept=kept(facts, ours_text),
        ours_tokens=ours_out.tokens_after / budget,
        ours_broken=broken_pairs(ours_conv.messages),
        both_fit=1,
    )
    span_facts = facts_of(condensed_span(ours_out.metadata, conv.messages))
    if span_facts:
        row.update(span_ours_kept=kept(span_facts, ours_text), span_trim_kept=kept(span_facts, trim_text))
    return row


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    def mean(key: str, where: str | None = None) -> float | None:
        vals = [r[key] for r in rows if key in r and (where is None or where in r)]
        return round(sum(vals) / len(vals), 4) if vals else None

    return {
        "conversations": len(rows),
        "ours_rejected_too_small": sum(r.get("ours_rejected", 0) for r in rows),
        "condensed_span": {
            "conversations": sum(1 for r in rows if "span_ours_kept" in r),
            "ours_fact_retention": mean("span_ours_kept"),
            "trim_messages_fact_retention": mean("span_trim_kept"),
        },
        "all_but_system_and_last_4": {
            "ours_fact_retention": mean("ours_kept"),
            "trim_messages_fact_retention": mean("trim_kept"),
            "ours_fact_retention_where_both_fit": mean("ours_kept", "both_fit"),
            "trim_messages_fact_retention_where_both_fit": mean("trim_kept", "both_fit"),
        },
        "ours_tokens_vs_budget": mean("ours_tokens"),
        "trim_tokens_vs_budget": mean("trim_tokens"),
        "ours_broken_pairs": sum(r["ours_broken"] for r in rows),
        "trim_messages_broken_pairs": sum(r.get("trim_broken", 0) for r in rows),
    }


def retention() -> dict[str, Any]:
    logging.getLogger("LiteLLM").setLevel(logging.CRITICAL)  # trim_messages logs a traceback when it crashes
    out: dict[str, Any] = {}
    for label, samples, facts_of in (
        ("tau-bench airline (200 runs, gpt-4o)", list(evaldata.tau_runs()), tau_facts),
        ("Claude Code sessions (13)", list(evaldata.claude_sessions()), claude_facts),
    ):
        for fraction in (0.25, 0.5):
            # Same budget for both: aim at the budget itself rather than 60% of it. A new engine
            # per budget: summaries cached at one budget would be reused as they are at the next.
            engine = ContextEngine(load_settings(condensation_target_ratio=1.0, condensation_min_messages=1))
            rows = [r for s in samples if (r := run_case(s, fraction, engine, facts_of)) is not None]
            out[f"{label} @ {int(fraction * 100)}%"] = {
                **summarise(rows),
                "condenser_only": condenser_only(samples, fraction, facts_of),
            }
    return out


def condenser_only(samples: Sequence[evaldata.Sample], fraction: float, facts_of: Any) -> dict[str, Any]:
    """The condenser alone, given the whole budget: the span (all but the system prompt and the last
    four messages) condensed to ``fraction`` of its tokens, against its most recent messages
    verbatim within the same budget."""
    counter = TokenCounter(load_settings())

    def count(text: str) -> int:
        return counter.count_text(text, Family.O200K)

    ours = recent = 0.0
    n = 0
    for sample in samples:
        conv = adapter_for(Format(sample.format)).parse(sample.body)
        span = shrinkable(conv.messages)
        facts = facts_of(span)
        if not facts:
            continue
        segments = segments_of(span)
        budget = int(count("\n".join(f"[{g.speaker}] {g.text}" for g in segments)) * fraction)
        condensed = condense(segments, budget, count)
        kept_recent: list[str] = []
        used = 0
        for g in reversed(segments):
            used += count(f"[{g.speaker}] {g.text}") + 1
            if used > budget:
                break
            kept_recent.append(g.text)
        ours += kept(facts, condensed)
        recent += kept(facts, "\n".join(kept_recent))
        n += 1
    return {"spans": n, "condensed": round(ours / n, 4), "most_recent_verbatim": round(recent / n, 4)}


def latency() -> dict[str, Any]:
    largest = max(evaldata.claude_sessions(), key=lambda s: len(json.dumps(s.messages)))
    fmt = Format.ANTHROPIC

    def cold_count() -> float:
        t = time.perf_counter()
        TokenCounter(load_settings()).count(adapter_for(fmt).parse(largest.body), largest.model)
        return time.perf_counter() - t

    async def manage() -> float:
        engine = ContextEngine(load_settings())  # a new engine: nothing cached
        t = time.perf_counter()
        await engine.manage(largest.body, fmt, largest.model, limit=32_000)
        return time.perf_counter() - t

    async def pairs() -> tuple[float, float]:
        """Best of ``LATENCY_PAIRS`` of each, side by side (one event loop, as in a proxy: its
        worker threads persist): a shared machine's drift weighs on both alike."""
        counts, manages = [], []
        for _ in range(LATENCY_PAIRS):
            counts.append(cold_count())
            manages.append(await manage())
        return min(counts), min(manages)

    count_s, manage_s = asyncio.run(pairs())
    return {
        "session": largest.name,
        "cold_count_s": round(count_s, 4),
        "manage_32k_s": round(manage_s, 4),
        "ratio": round(manage_s / count_s, 2),
    }


def main() -> None:
    """``python -m bench.condensation [retention|latency]`` (both by default)."""
    import sys

    parts = sys.argv[1:] or ["retention", "latency"]
    out: dict[str, Any] = {}
    if "retention" in parts:
        out["fact_retention"] = retention()
    if "latency" in parts:
        out["latency"] = latency()
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
