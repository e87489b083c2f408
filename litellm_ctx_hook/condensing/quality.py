"""The summary quality gate (pure, deterministic): check a model's summary against its span, mend
what can be mended, reject the rest (the engine then falls back to the extractive condenser).

:func:`review` takes the model's text through these steps:

1. *clean*: a wrapping code fence, a preamble line before the first heading ("Here is the
   summary:"), a sign-off line ("Let me know if …"), lines that only say a section is empty and
   headings left with nothing under them are removed (:func:`without_cut_line`, applied by the
   caller to each answer, drops the sentence a model was writing when its ``max_tokens`` ran out);
2. *reject* an empty text, a refusal ("I'm sorry, I can't …"), or a *reply*: a text that uses
   none of the requested headings and keeps less than ``RAW_RETENTION_FLOOR`` of the span's key
   tokens on its own (it answered or obeyed the transcript instead of summarising it); and a text
   whose identifiers and numbers are mostly not in the span (``INVENTED_LIMIT``: made up);
3. *fit*: a text longer than its budget is cut at a line boundary (models overshoot ``max_tokens``
   in words), leaving room for the mend;
4. *mend*: the key tokens of the span the text does not quote are appended as one
   ``[also mentioned] …`` line, as many as ``MEND_SHARE`` of the budget holds (the extractive
   condenser's index of facts);
5. *score* the result: 0 if it is not shorter than the span, else ``min(1, 0.5 + retention)``
   where ``retention`` is the share of the span's key tokens (numbers, identifiers, paths, URLs,
   names — :func:`salience.key_tokens`) found in it. Below the threshold it is rejected.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from ..analysis.fact_index import INDEX_LABEL, missing_facts_index
from ..analysis.salience import fact_retention, key_tokens

RAW_RETENTION_FLOOR = 0.1  # a text without headings must keep this share of the key tokens by itself
INVENTED_LIMIT = 0.5  # reject when more than this share of a summary's ids and numbers are not in the span
INVENTED_MIN = 4  # … and at least this many are
MEND_SHARE = 0.25  # of the budget, at most, for the appended index of missed facts
MEND_LABEL = INDEX_LABEL
CUT_SHARE = 0.9  # an answer this close to its max_tokens that ends mid-line was cut there
_LINE_END = frozenset(".!?:;)]}\"'`*")
_SENTENCE_END = re.compile(r"[.!?](?=\s)")

_REFUSAL = re.compile(
    r"^\s*(I('m| am)? (sorry|unable|not able)|I can(no|')t|As an AI|I won't|I will not)",
    re.IGNORECASE,
)
_HEADING = re.compile(
    r"^\s*(?:#{1,4}\s*|\*\*)?(goal|user requests|decisions and facts|files and artifacts|errors and fixes|"
    r"current state and next step|summary|key points)\b",
    re.IGNORECASE | re.MULTILINE,
)
_PREAMBLE = re.compile(
    r"^\s*(sure|certainly|of course|okay|ok|here(?:'s| is| are)|below is|the following)\b.*:\s*$", re.IGNORECASE
)
_SIGN_OFF = re.compile(r"^\s*(let me know|i hope|feel free|if you (?:need|have|want))\b", re.IGNORECASE)
_FENCE = re.compile(r"^\s*```[\w-]*\s*\n(.*?)\n\s*```\s*$", re.DOTALL)
_FACTLIKE = re.compile(r"\d|/|_")
_HEADING_LINE = re.compile(r"^\s*#{1,4}\s+\S")
_EMPTY_SECTION = re.compile(  # "- No files or artifacts were read, created, or changed.", "None.", "N/A"
    r"^\s*(?:[-*]\s*)?(?:(?:no|none of the)\s+(?:specific\s+|other\s+|new\s+)?"
    r"(?:files?|artifacts?|documents?|errors?|fixes|issues|decisions|requests|changes|information|details|next steps?)"
    r"(?:,?\s+(?:or|and)\s+\w+)*\s+(?:were|was|have been|has been)\s+"
    r"(?:mentioned|made|read|created|changed|reported|found|given|discussed|provided)\b[^.]*|none|n/?a)\.?\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the gate made of a summary: ``text`` is ``None`` when it was rejected."""

    text: str | None
    score: float
    reason: str  # ok | mended | empty | refusal | reply | invented | not shorter | low retention
    mended_facts: int = 0


def clean(text: str) -> str:
    """The summary without a wrapping code fence, a preamble line, a sign-off line, lines that only
    say a section is empty ("- No errors were mentioned.") and headings left with nothing under them."""
    text = text.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced.group(1).strip()
    lines = [line for line in text.splitlines() if not _EMPTY_SECTION.match(line)]
    if len(lines) > 1 and _PREAMBLE.match(lines[0]):
        lines = lines[1:]
    while len(lines) > 1 and _SIGN_OFF.match(lines[-1]):
        lines.pop()
    kept: list[str] = []
    for line in lines:  # a heading followed by another heading (or nothing) has nothing under it
        if kept and _HEADING_LINE.match(kept[-1]) and (_HEADING_LINE.match(line) or not line.strip()):
            if _HEADING_LINE.match(line):
                kept[-1] = line
            continue
        kept.append(line)
    if kept and _HEADING_LINE.match(kept[-1]):
        kept.pop()
    return "\n".join(kept).strip()


def without_cut_line(text: str, asked: int, count: Callable[[str], int]) -> str:
    """``text`` without the sentence the model was writing when it stopped at its ``max_tokens``
    (``asked``): the last line up to its last full sentence, or without that line if it has none."""
    lines = text.rstrip().split("\n")
    last = lines[-1].rstrip()
    if not last or last[-1] in _LINE_END or count(text) < CUT_SHARE * asked:
        return text
    ends = [m.end() for m in _SENTENCE_END.finditer(last)]
    lines[-1] = last[: ends[-1]].rstrip() if ends else ""
    return "\n".join(lines).rstrip()


def fit(text: str, budget: int, count: Callable[[str], int]) -> str:
    """``text`` cut at a line boundary to at most ``budget`` tokens (one long line: by characters)."""
    if count(text) <= budget:
        return text
    lines = text.split("\n")
    lo, hi = 0, len(lines)  # the most whole lines that fit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count("\n".join(lines[:mid])) <= budget:
            lo = mid
        else:
            hi = mid - 1
    if lo:
        return "\n".join(lines[:lo])
    cut = text[: max(0, budget) * 3]
    while cut and count(cut) > budget:
        cut = cut[: len(cut) * 3 // 4]
    return cut


def mend_room(budget: int) -> int:
    """Tokens of a summary's budget kept for the mend: ask the summariser for ``budget - mend_room``."""
    return int(MEND_SHARE * budget)


def invented_share(source: str, summary: str) -> tuple[int, float]:
    """How many of the summary's ids, numbers and paths are not in ``source``, and their share."""
    facts = [k for k in key_tokens(summary) if _FACTLIKE.search(k)]
    if not facts:
        return 0, 0.0
    invented = sum(1 for k in facts if k not in source)
    return invented, invented / len(facts)


def quality_score(span_text: str, summary: str, span_tokens: int, summary_tokens: int) -> float:
    """0 for an empty or refused summary or one not shorter than its span; else 0.5 + retention."""
    if not summary.strip() or _REFUSAL.match(summary):
        return 0.0
    if summary_tokens >= span_tokens:
        return 0.0
    return min(1.0, 0.5 + fact_retention(span_text, summary))


def review(
    span_text: str,
    summary: str,
    *,
    span_tokens: int,
    budget: int,
    threshold: float,
    count: Callable[[str], int],
) -> Verdict:
    """Check ``summary`` of ``span_text`` (``span_tokens`` long) against a ``budget`` of tokens;
    return it cleaned, fitted and mended, or rejected (see the module docstring)."""
    text = clean(summary)
    if not text:
        return Verdict(None, 0.0, "empty")
    if _REFUSAL.match(text):
        return Verdict(None, 0.0, "refusal")
    if _HEADING.search(text) is None and fact_retention(span_text, text) < RAW_RETENTION_FLOOR:
        return Verdict(None, 0.0, "reply")
    invented, share = invented_share(span_text, text)
    if invented >= INVENTED_MIN and share > INVENTED_LIMIT:
        return Verdict(None, 0.0, "invented")
    room = mend_room(budget) if fact_retention(span_text, text) < 1.0 else 0
    text = fit(text, budget - room, count)  # the summariser is asked for budget - room (mend_room)
    mended = 0
    if room:
        index = missing_facts_index(span_text, text, budget - count(text) - 1, count)
        if index:
            mended = len(index.split()) - len(MEND_LABEL.split())
            text = f"{text}\n{index}"
    score = quality_score(span_text, text, span_tokens, count(text))
    if score == 0.0:
        return Verdict(None, 0.0, "not shorter")
    if score < threshold:
        return Verdict(None, score, "low retention")
    return Verdict(text, score, "mended" if mended else "ok", mended)
