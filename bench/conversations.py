"""Condensation of ordinary chat: which facts survive, side by side with ``trim_messages``.

Data (``../shared/evaldata/conversations``, read at run time):

- **BEAM** 100k: 20 long user/assistant chats. A message carrying the scenario's ``time_anchor``
  starts a session and gets a header line ``[Session k — March-15-2024]``. Facts: the rubric items
  ``LLM response should state: X`` and ``… should mention: X`` of the chat's questions (X),
  measured where the whole conversation keeps them by the rule below (a fact that no line of the
  chat states is not counted against anyone).
- **REALTALK**: 5 chats between two people over 18–25 sessions. ``speaker_1`` is ``user``,
  ``speaker_2`` is ``assistant``; each turn (``dia_id``) is one message, as in the messaging app
  (``MERGE_TURNS``: one message per run of a speaker's turns instead); a session's first message
  starts with the header ``[Session k — 2023-12-28 20:02]`` (its first turn's date and time).
  Facts: the evidence turns (``dia_id``) of the chat's questions, as their text.

Each conversation ends with its last user message (later assistant turns are left out: a request
ends with the user's turn). The same conversation goes to every method.

**Content words**: the lower-cased runs of letters and digits (``[a-z0-9]+``) of a text, without
the stop-words of :data:`STOP_WORDS` and without one-letter words (digits stay). **A fact is
kept** by an output when **one line** of the output holds more than half of the fact's distinct
content words (all of them for facts of one or two words). Also reported: the lenient rule
(``anywhere``: the content words may be spread over the whole output; on these chats it credits
even ``trim_messages`` at 25% with two thirds of the REALTALK evidence, since words such as
"going" or "friends" are everywhere) and, for REALTALK, the strict one (``verbatim``: the evidence
turn's whole text appears in the output). Shares are pooled over the chats' facts; the facts of at
least ``LONG_FACT`` content words are also reported apart (a one- or two-word fact such as "Three"
or "250ms" is matched by chance by some line of almost any long text).

Budgets: the conversation's tokens by our :class:`TokenCounter` for ``gpt-4o`` (system prompt, of
which there is none, plus) 10%, 25% or 50%. Methods at the same budget:

- ``trim``: ``litellm.utils.trim_messages``, its ``max_tokens`` lowered until the output fits the
  budget by our count (``bench.condensation.fit_trim``);
- ``compaction``: LiteLLM's compaction shape, one summary of everything before the last user
  message (our extractive condenser, in our summary wrapper) and that last user message;
- ``ours``: the engine with the extractive condenser, aiming at the budget
  (``CONDENSATION_TARGET_RATIO=1.0``), a new engine per budget (as ``bench.condensation``).

Also reported: facts kept by the summary text alone per 1,000 tokens of it (``compaction``,
``ours``).

    python -m bench.conversations [beam|realtalk] [--limit N]
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from litellm_ctx_hook.adapters import adapter_for
from litellm_ctx_hook.analysis.counting import TokenCounter
from litellm_ctx_hook.analysis.tokenizers import Family
from litellm_ctx_hook.condensing.local.extractive import condense, segments_of
from litellm_ctx_hook.conversation import Format, Message
from litellm_ctx_hook.engine.engine import ContextEngine
from litellm_ctx_hook.errors import ContextWindowExceededError
from litellm_ctx_hook.planning.edits import SUMMARY_OPEN, summary_text
from litellm_ctx_hook.settings import load_settings

from . import evaldata
from .condensation import fit_trim

MODEL = "gpt-4o"
FRACTIONS = (0.10, 0.25, 0.50)
METHODS = ("trim", "compaction", "ours")
MERGE_TURNS = False
LONG_FACT = 4  # facts of at least this many content words: a line matching them by chance is unlikely

STOP_WORDS = frozenset(
    str.split(
        "a about above after again against all am an and any are aren as at be because been before being "
        "below between both but by can could couldn did didn do does doesn doing don down during each few "
        "for from further had hadn has hasn have haven having he her here hers herself him himself his how "
        "i if in into is isn it its itself just ll me more most my myself no nor not now of off on once "
        "only or other our ours ourselves out over own re same she should shouldn so some such than that "
        "the their theirs them themselves then there these they this those through to too under until up "
        "us ve very was wasn we were weren what when where which while who whom why will with won would "
        "wouldn you your yours yourself yourselves im ive id youre thats its dont cant "
        "yeah yes yep ok okay oh lol haha hahaha um hmm wow"
    )
)
_WORD = re.compile(r"[a-z0-9]+")


def content_words(text: str) -> frozenset[str]:
    """The lower-cased letter/digit runs of ``text`` that are no stop-words nor single letters."""
    return frozenset(w for w in _WORD.findall(text.lower()) if w not in STOP_WORDS and (len(w) > 1 or w.isdigit()))


@dataclass(frozen=True, slots=True)
class Fact:
    """What must survive: a rubric fact (BEAM) or an evidence turn (REALTALK)."""

    text: str
    words: frozenset[str]


def is_kept(fact: Fact, output_words: frozenset[str] | set[str]) -> bool:
    """More than half of the fact's content words are among ``output_words``."""
    return 2 * len(fact.words & output_words) > len(fact.words)


def kept_flags(facts: Sequence[Fact], output: str) -> list[bool]:
    """For each fact, whether one line of ``output`` holds more than half of its content words
    (the measure of this benchmark)."""
    by_word: dict[str, list[int]] = {}
    for i, line in enumerate(output.splitlines()):
        for w in content_words(line):
            by_word.setdefault(w, []).append(i)
    flags = []
    for f in facts:
        hits: dict[int, int] = {}
        for w in f.words:
            for i in by_word.get(w, ()):
                hits[i] = hits.get(i, 0) + 1
        flags.append(any(2 * n > len(f.words) for n in hits.values()))
    return flags


def facts_kept(facts: Sequence[Fact], output: str) -> int:
    """How many of ``facts`` the output keeps: one of its lines holds most of the fact's content words."""
    return sum(kept_flags(facts, output))


def anywhere_kept(facts: Sequence[Fact], output: str) -> int:
    """How many of ``facts`` have most of their content words anywhere in the output (lenient)."""
    words = content_words(output)
    return sum(1 for f in facts if is_kept(f, words))


def verbatim_kept(facts: Sequence[Fact], output: str) -> int:
    """How many of ``facts`` appear verbatim in the output (the stricter rule)."""
    return sum(1 for f in facts if f.text.strip() in output)


@dataclass(frozen=True)
class Case:
    """One chat as an OpenAI request, with the facts a condensed version should keep."""

    name: str
    dataset: str  # "beam" | "realtalk"
    messages: list[dict[str, Any]]
    facts: tuple[Fact, ...]

    @property
    def body(self) -> dict[str, Any]:
        return {"model": MODEL, "messages": self.messages}


def _ending_with_user(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    last = max(i for i, m in enumerate(messages) if m["role"] == "user")
    return messages[: last + 1]


# -- BEAM ---------------------------------------------------------------------------------------
_RUBRIC = re.compile(r"LLM response should (?:state|mention):\s*(.+)", re.S)


def beam_conversation(chat: dict[str, Any]) -> list[dict[str, Any]]:
    """The chat's messages, a session header on each message with a ``time_anchor``."""
    out: list[dict[str, Any]] = []
    session = 0
    for m in chat["messages"]:
        content = m["content"]
        if m.get("time_anchor"):
            session += 1
            content = f"[Session {session} — {m['time_anchor']}]\n{content}"
        out.append({"role": m["role"], "content": content})
    return _ending_with_user(out)


def beam_facts(chat: dict[str, Any], conversation_text: str) -> tuple[Fact, ...]:
    """The chat's ``state:`` / ``mention:`` rubric facts that the whole conversation keeps."""
    seen: set[str] = set()
    facts: list[Fact] = []
    for q in chat["questions"]:
        for item in q.get("rubric") or []:
            m = _RUBRIC.match(item.strip())
            if m is None:
                continue
            text = m.group(1).strip()
            fact = Fact(text, content_words(text))
            if fact.words and text not in seen:
                seen.add(text)
                facts.append(fact)
    present = kept_flags(facts, conversation_text)
    return tuple(f for f, ok in zip(facts, present, strict=True) if ok)


# -- REALTALK -----------------------------------------------------------------------------------
def _when(date_time: str) -> str:
    """``28.12.2023, 20:02:02`` as ``2023-12-28 20:02``."""
    m = re.match(r"(\d+)\.(\d+)\.(\d+),?\s*(\d+:\d+)", date_time)
    return f"{m.group(3)}-{int(m.group(2)):02d}-{int(m.group(1)):02d} {m.group(4)}" if m else date_time


def _sessions(chat: dict[str, Any]) -> list[list[dict[str, Any]]]:
    numbers = sorted(int(k.split("_")[1]) for k in chat if re.fullmatch(r"session_\d+", k))
    return [chat[f"session_{n}"] for n in numbers if chat[f"session_{n}"]]


def realtalk_conversation(chat: dict[str, Any], merge: bool = True) -> tuple[list[dict[str, Any]], dict[str, str]]:
    """The chat as OpenAI messages, and each turn's text by ``dia_id``. ``merge``: consecutive
    turns of one speaker within a session are one message (else each turn is a message)."""
    first = chat["name"]["speaker_1"]
    out: list[dict[str, Any]] = []
    turns: dict[str, str] = {}
    for k, session in enumerate(_sessions(chat), 1):
        header = f"[Session {k} — {_when(session[0].get('date_time', ''))}]"
        lines: list[str] = [header]
        role = None
        for turn in session:
            text = (turn.get("clean_text") or "").strip()
            if not text:
                continue
            turns[turn["dia_id"]] = text
            who = "user" if turn["speaker"] == first else "assistant"
            if (who != role or not merge) and role is not None and lines:
                out.append({"role": role, "content": "\n".join(lines)})
                lines = []
            role = who
            lines.append(text)
        if role is not None and lines:
            out.append({"role": role, "content": "\n".join(lines)})
    return _ending_with_user(out), turns


def realtalk_facts(chat: dict[str, Any], turns: dict[str, str]) -> tuple[Fact, ...]:
    """The evidence turns of the chat's questions (each once, in chat order), as their text."""
    wanted = {e for q in chat["qa"] for e in q.get("evidence") or []}
    facts = [Fact(text, content_words(text)) for dia, text in turns.items() if dia in wanted]
    return tuple(f for f in facts if f.words)


# -- cases --------------------------------------------------------------------------------------
def text_of(messages: Iterable[dict[str, Any]]) -> str:
    return "\n".join(m["content"] for m in messages if isinstance(m.get("content"), str))


def load_cases(dataset: str) -> list[Case]:
    """Every chat of ``dataset`` (``beam`` or ``realtalk``) as a :class:`Case`."""
    cases: list[Case] = []
    if dataset == "beam":
        for chat in evaldata.beam_chats():
            messages = beam_conversation(chat)
            cases.append(Case(chat["id"], "beam", messages, beam_facts(chat, text_of(messages))))
    elif dataset == "realtalk":
        for name, chat in evaldata.realtalk_chats():
            messages, turns = realtalk_conversation(chat, MERGE_TURNS)
            cases.append(Case(name, "realtalk", messages, realtalk_facts(chat, turns)))
    else:
        raise ValueError(f"unknown data set {dataset!r}: beam or realtalk")
    return cases


# -- methods ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Output:
    """What one method sent: all its text, and the text of its summary (empty if none)."""

    text: str
    summary: str
    tokens: int
    rejected: bool = False


class Bench:
    """The counter and the budgets shared by every method."""

    def __init__(self) -> None:
        self.counter = TokenCounter(load_settings())
        self.openai = adapter_for(Format.OPENAI)

    def count_text(self, text: str) -> int:
        return self.counter.count_text(text, Family.O200K)

    def total(self, messages: list[dict[str, Any]]) -> int:
        return self.counter.count(self.openai.parse({"messages": messages}), MODEL).total

    def budget(self, case: Case, fraction: float) -> int:
        conv = self.openai.parse(case.body)
        count = self.counter.count(conv, MODEL)
        system = count.system + sum(
            n for m, n in zip(conv.messages, count.messages, strict=True) if m.role.value == "system"
        )
        return system + int((count.total - system) * fraction)

    def trim(self, case: Case, budget: int, engine: ContextEngine) -> Output:
        sample = evaldata.Sample(case.name, "openai", case.body, MODEL)
        conv = fit_trim(json.loads(json.dumps(case.messages)), sample, budget, engine)
        text = "\n".join(p.text for m in conv.messages for p in m.parts)
        return Output(text, "", self.counter.count(conv, MODEL).total)

    def compaction(
        self, case: Case, budget: int, summarize: Callable[[list[Message], int], str] | None = None
    ) -> Output:
        """One summary of everything before the last user message, then that message.
        ``summarize(messages, budget_tokens)`` makes the summary (our extractive condenser by default)."""
        head, last = case.messages[:-1], case.messages[-1]
        parsed = self.openai.parse({"messages": head}).messages

        def extractive(messages: list[Message], room: int) -> str:
            return condense(segments_of(messages), room, self.count_text)

        make = summarize or extractive

        def build(summary: str) -> list[dict[str, Any]]:
            return [{"role": "user", "content": summary_text(summary, len(head))}, last]

        room = budget - self.total(build(""))
        for _ in range(8):
            if room <= 0:
                break
            summary = make(list(parsed), room)
            out = build(summary)
            tokens = self.total(out)
            if tokens <= budget:
                return Output(text_of(out), summary, tokens)
            room -= tokens - budget
        return Output(text_of([last]), "", self.total([last]), rejected=True)

    def ours(self, case: Case, budget: int, engine: ContextEngine) -> Output:
        try:
            result = asyncio.run(engine.manage(case.body, Format.OPENAI, MODEL, limit=budget))
        except ContextWindowExceededError:
            return Output("", "", 0, rejected=True)
        conv = self.openai.parse(result.body)
        texts = [p.text for m in conv.messages for p in m.parts]
        summary = "\n".join(t for t in texts if t.startswith(SUMMARY_OPEN))
        return Output("\n".join(texts), summary, result.tokens_after)


def engine_for_budget() -> ContextEngine:
    """A new engine aiming at the budget itself (as ``bench.condensation``)."""
    return ContextEngine(load_settings(condensation_target_ratio=1.0, condensation_min_messages=1))


def measure(case: Case, out: Output, count_text: Callable[[str], int]) -> dict[str, Any]:
    """The measures of one method's output, identical for every method."""
    flags = kept_flags(case.facts, out.text)
    row: dict[str, Any] = {
        "kept": sum(flags),
        "kept_long": sum(k for f, k in zip(case.facts, flags, strict=True) if len(f.words) >= LONG_FACT),
        "anywhere": anywhere_kept(case.facts, out.text),
        "rejected": out.rejected,
    }
    if case.dataset == "realtalk":
        row["verbatim"] = verbatim_kept(case.facts, out.text)
    if out.summary:
        row["summary_kept"] = facts_kept(case.facts, out.summary)
        row["summary_tokens"] = count_text(out.summary)
    return row


def run(dataset: str, limit: int | None = None) -> dict[str, Any]:
    logging.getLogger("LiteLLM").setLevel(logging.CRITICAL)  # trim_messages logs a traceback when it crashes
    bench = Bench()
    cases = [c for c in load_cases(dataset) if c.facts][:limit]
    report: dict[str, Any] = {}
    for fraction in FRACTIONS:
        engine = engine_for_budget()
        totals: dict[str, dict[str, float]] = {m: {} for m in METHODS}
        n_facts = n_long = 0
        t0 = time.perf_counter()
        for case in cases:
            budget = bench.budget(case, fraction)
            n_facts += len(case.facts)
            n_long += sum(1 for f in case.facts if len(f.words) >= LONG_FACT)
            outs = {
                "trim": bench.trim(case, budget, engine),
                "compaction": bench.compaction(case, budget),
                "ours": bench.ours(case, budget, engine),
            }
            for method, out in outs.items():
                for key, value in measure(case, out, bench.count_text).items():
                    totals[method][key] = totals[method].get(key, 0) + value
        seconds = round(time.perf_counter() - t0, 1)
        row: dict[str, Any] = {"conversations": len(cases), "facts": n_facts, "long_facts": n_long, "seconds": seconds}
        for method in METHODS:
            t = totals[method]
            entry: dict[str, Any] = {
                "kept": round(t.get("kept", 0) / n_facts, 4),
                "kept_long": round(t.get("kept_long", 0) / max(1, n_long), 4),
            }
            for key in ("anywhere", "verbatim"):
                if key in t:
                    entry[key] = round(t[key] / n_facts, 4)
            if t.get("summary_tokens"):
                entry["facts_per_1k_summary_tokens"] = round(1000 * t["summary_kept"] / t["summary_tokens"], 2)
            if t.get("rejected"):
                entry["rejected"] = int(t["rejected"])
            row[method] = entry
        trim_kept = row["trim"]["kept"]
        row["ours_vs_trim"] = round(row["ours"]["kept"] / trim_kept, 2) if trim_kept else None
        row["compaction_vs_trim"] = round(row["compaction"]["kept"] / trim_kept, 2) if trim_kept else None
        trim_long = row["trim"]["kept_long"]
        row["ours_vs_trim_long"] = round(row["ours"]["kept_long"] / trim_long, 2) if trim_long else None
        report[f"{int(fraction * 100)}%"] = row
    return report


def main() -> None:
    args = sys.argv[1:]
    limit = None
    if "--limit" in args:
        i = args.index("--limit")
        limit = int(args[i + 1])
        del args[i : i + 2]
    datasets = args or ["beam", "realtalk"]
    out = {d: run(d, limit) for d in datasets}
    print(json.dumps(out, indent=2))
    print(table(out))


def table(out: dict[str, Any]) -> str:
    """The report as a Markdown table."""
    lines = [
        "| data @ budget | chats | facts | ours | `trim_messages` | compaction shape | ours / trim | "
        "compaction / trim | facts of ≥ 4 words: ours / trim (ratio) | anywhere: ours / trim | "
        "verbatim: ours / trim | facts per 1k summary tokens: ours / compaction |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for dataset, rows in out.items():
        for budget, row in rows.items():
            o, t, c = row["ours"], row["trim"], row["compaction"]
            verbatim = f"{o['verbatim']:.3f} / {t['verbatim']:.3f}" if "verbatim" in o else ""
            density = f"{o.get('facts_per_1k_summary_tokens', 0):.1f} / {c.get('facts_per_1k_summary_tokens', 0):.1f}"
            lines.append(
                f"| {dataset} @ {budget} | {row['conversations']} | {row['facts']} | **{o['kept']:.3f}** | "
                f"{t['kept']:.3f} | {c['kept']:.3f} | **{row['ours_vs_trim']}×** | {row['compaction_vs_trim']}× | "
                f"{o['kept_long']:.3f} / {t['kept_long']:.3f} ({row['ours_vs_trim_long']}×) | "
                f"{o['anywhere']:.3f} / {t['anywhere']:.3f} | {verbatim} | {density} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
