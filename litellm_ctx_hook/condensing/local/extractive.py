"""The local, deterministic condenser: keeps the most informative lines of a span (no LLM).

The span is seen as :class:`Segment` s (who said what, :func:`segments_of`). :func:`condense`
cuts every segment's :func:`readable` text (JSON as ``key=value`` lines, one per object; other
text as it is) into *units* (:mod:`cutting`): its non-empty lines, long lines cut into sentences
or clauses, very long units cut in the middle; every unit is a stripped slice of its segment's
readable text (or the middle cut of one).

Each unit is scored with :func:`salience.line_score`; a unit whose :func:`salience.shape` was
already seen scores ``REPEAT_FACTOR`` times less; exact duplicates are dropped (the first is
kept). Units with a positive score get small bonuses: ``FIRST_BONUS`` for the first unit of a
segment (what a message is about), ``USER_BONUS`` for the user's own words, up to
``RECENT_BONUS`` growing linearly with the segment's position (recent turns matter more), and
``HEADER_BONUS`` for a bracketed line with a digit (a session or date header).

Tool output is read by template (:mod:`analysis.templates`; what a unit earns, :mod:`marks`): in a
tool result whose lines mostly share a few templates (a log, a test run, a listing, JSON records),
a line of a rare template (the failure, the warning, the note, the unusual value) earns
``RARE_BONUS`` and ranks first, the lines of a repetitive template count ``COMMON_FACTOR`` as much
(and earn no ``FIRST_BONUS``), and each group gets one more unit where its first line was, ``×108
like: 2026-11-0… INFO worker-{1..8} …`` (``GROUP_BONUS``; left out when everything fits or all its
lines are kept). The lines that stand in for cleared output (its standouts) are rare too; so are,
in the summary of earlier turns being condensed again, the lines of a tool result whose template no
other line of it has, while the summary's old index line yields to the new index. A tool result of
fewer than ``MARK_MIN_LINES`` units, or where no template holds ``MARK_LARGEST_SHARE`` of them, is
scored as any other (its lines are often the facts themselves: a short list of flights, a search
over a few files).

A span of plain conversation (:func:`is_chat`: no tool calls or results) is scored for chat, where
every line carries the speakers' names and greetings: each key token counts by its
:mod:`rarity` in the span (at least ``KEY_FLOOR``), each rare word (lower-cased, no stop-word)
adds ``WORD_WEIGHT`` times its rarity, both counting less once a selected unit holds them, and a
line in the first person gets ``SELF_BONUS`` (what the speakers say of themselves is what later
turns ask about; :mod:`chat`). Its lines are normalised by length with ``CHAT_LENGTH_NORM``
(a chat's facts sit in short turns), and neither speaker nor recency earns a bonus there: two
people chatting are both worth hearing, and what is asked later reaches back to any day. Spans
with tool traffic are scored without rarity: there the key tokens carry the facts, and rarity
measured no gain.

A span estimated at more than ``SCORED_SHARE`` budgets (characters per token measured on a
sample) is first ranked by a cheap prescore, and only the best ``SCORED_SHARE`` budgets of it
are scored: at a 20× compression the full scoring of every line cost four times the tokenizer's
time and kept no more facts. The prescore of a span with tool traffic counts fact-like bytes
(:mod:`prescore`); that of a chat, the rarity of its words and the chat cues
(:func:`chat.chat_prescores`).

Selection is greedy by score, within three quarters of the budget (``INDEX_SHARE``; half of it
when the budget is a tenth of the span or less, :func:`index_share`). Every unit
is counted once, labels and the ``…`` gap marker once each, and the exact cost change of adding
a unit (its line, a label when the speaker changes, a gap marker when units between were
dropped) keeps a running total; the rendered text is then counted once and trimmed (lowest
scores first) if the estimate was low. The rest of the budget goes to an index of the key tokens
(ids, numbers, paths, names) of the scored units that no selected unit quotes, most frequent
first, JSON field names left out; the slack, if any, goes back to more units. The selected units
are rendered in their original order (the kept sentences or clauses of one line on one line,
joined as in the text), the index last::

    [user] I need to change reservation 4WQ150 ...
    …
    [tool result get_reservation_details] reservation_id=4WQ150 user_id=mia_li_3668 origin=JFK
    [assistant] ...
    [also mentioned] HAT136 2024-05-20 credit_card_4421486

When everything fits, everything is kept, and there is no index.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from heapq import heapify, heappop, heappush
from typing import NamedTuple

from ...analysis.fact_index import (
    INDEX_LABEL,
    INDEX_SHARE,
    INDEX_SHARE_MAX,
    index_line,
    index_share,
    missing_facts_index,
)
from ...analysis.readable import readable
from ...analysis.salience import REPEAT_FACTOR, KeyScanner, LineSignals, fact_retention, shape, signals
from ...conversation import Message, PartKind
from ...runtime.pacing import pace
from .chat import CHAT_LENGTH_NORM, chat_prescores, is_header, speaks_of_self
from .cutting import GAP, cut_units
from .marks import COMMON_FACTOR, GROUP_BONUS, SUMMARY_SPEAKER, may_mark, template_marks
from .prescore import best_within, prescores
from .rarity import mass, rarity_weights, words

__all__ = [
    "INDEX_LABEL", "INDEX_SHARE", "INDEX_SHARE_MAX", "SUMMARY_SPEAKER", "Segment", "condense", "condense_summary",
    "fact_retention",
    "index_share", "is_chat", "missing_facts_index", "readable", "segments_of",
]  # fmt: skip

ALL_FIT_SHARE = 1.5  # units estimated at more than this many budgets: not all fit
FIRST_BONUS = 0.5
USER_BONUS = 0.5
RECENT_BONUS = 0.5
WORD_WEIGHT = 0.5  # per rare word (rarity 1; a word said everywhere adds 0)
KEY_FLOOR = 0.5  # a key token said everywhere still weighs this much of KEY_WEIGHT
HEADER_BONUS = 1.0  # a bracketed line with a digit (session and date headers)
SELF_BONUS = 3.0  # in a chat, a line in the first person
SCORED_SHARE = 2  # units estimated at more than this many budgets are prescored, that much scored
SAMPLE_UNITS = 256
MAX_DENSITY = 2  # a line is taken to hold at most this many times the span's characters per token
_MAX_FILL_ROUNDS = 3
_SLOW_TRIM_ROUNDS = 8


@dataclass(frozen=True, slots=True)
class Segment:
    """One speaker's piece of the span: ``speaker`` is the label shown in the output."""

    speaker: str  # "user", "assistant", "tool call Bash", "tool result Bash", ...
    text: str


def _call_args(text: str, name: str | None) -> str:
    """A tool call's arguments without the name the adapters put in front of them."""
    if name:
        if text.startswith(name + "(") and text.endswith(")"):
            return text[len(name) + 1 : -1]  # OpenAI / Responses: name(arguments)
        if text.startswith(name + "\n"):
            return text[len(name) + 1 :]  # Anthropic: name, then one line per parameter
        if text == name:
            return ""
    return text


def segments_of(messages: Sequence[Message]) -> list[Segment]:
    """The readable view of a span: text, tool calls and tool results; no thinking, no blobs."""
    names = {p.tool_id: p.tool_name for m in messages for p in m.parts if p.kind is PartKind.TOOL_CALL and p.tool_id}
    out: list[Segment] = []
    for m in messages:
        role = m.role.value
        image_said = False
        for p in m.parts:
            if p.kind is PartKind.TEXT and p.text.strip():
                out.append(Segment(role, p.text))
            elif p.kind is PartKind.DOCUMENT and p.text.strip():
                out.append(Segment(f"{role} document", p.text))
            elif p.kind is PartKind.IMAGE:
                if not image_said:
                    out.append(Segment(role, "[image]"))
                    image_said = True
            elif p.kind is PartKind.TOOL_CALL:
                name = p.tool_name or ""
                out.append(Segment(f"tool call {name}".rstrip(), _call_args(p.text, p.tool_name)))
            elif p.kind is PartKind.TOOL_RESULT and p.text.strip():
                name = p.tool_name or names.get(p.tool_id or "") or ""
                out.append(Segment(f"tool result {name}".rstrip(), p.text))
            # THINKING (the model's own past reasoning) and OPAQUE parts are left out.
    return out


@dataclass(frozen=True, slots=True)
class _Rarity:
    """The span's rarity weights (:mod:`rarity`): of key tokens, floored at ``KEY_FLOOR``, and of words."""

    keys: dict[str, float]
    words: dict[bytes, float]


@dataclass(slots=True)
class _Unit:
    seg: int
    text: str
    signals: LineSignals | None  # None: boilerplate, scores 0
    factor: float  # REPEAT_FACTOR for a repeated shape, else 1
    bonus: float
    at: int  # its position among the span's distinct units
    glue: str | None  # what joins it to the unit before it in its line (None: it starts a line)
    words: frozenset[bytes] = frozenset()
    synthetic: bool = False  # a group's line (:mod:`templates`), not text of the span
    rarity: _Rarity | None = None
    score: float = 0.0
    tokens: int = -1  # counted lazily, once

    def value(self, known: set[str], known_words: set[bytes]) -> float:
        """The unit's score once the key tokens in ``known`` and the words in ``known_words`` are
        kept by other units."""
        if self.signals is None:
            return 0.0
        if self.rarity is None:
            return self.signals.score(known) * self.factor + self.bonus
        extra = WORD_WEIGHT * mass(self.words, self.rarity.words, known_words)
        return self.signals.score(known, self.rarity.keys, extra, CHAT_LENGTH_NORM) * self.factor + self.bonus


class _Selection:
    """The selected units (sorted positions) and the estimated token cost of their rendering."""

    def __init__(
        self, units: list[_Unit], segments: Sequence[Segment], count: Callable[[str], int], chars_per_token: float
    ) -> None:
        self.units = units
        self.segments = segments
        self.count = count
        self._max_chars_per_token = MAX_DENSITY * chars_per_token
        self.chosen: list[int] = []
        self.trailer = ""  # a last line after the selected units (the index of facts)
        self._labels: dict[str, int] = {}
        self._gap = count(GAP) + 1
        self._real = [0]  # units of the span's text (not groups' lines) before each position
        for unit in units:
            self._real.append(self._real[-1] + (not unit.synthetic))

    def _skips(self, prev: int, k: int) -> bool:
        """Whether text of the span lies between the selected units ``prev`` and ``k`` (a gap)."""
        return self._real[k] - self._real[prev + 1] > 0

    def _may_fit(self, k: int, room: int) -> bool:
        """Whether unit ``k`` could fit in ``room`` tokens at all: a unit more than ``MAX_DENSITY``
        times the span's characters per token too long is not counted to find out."""
        return len(self.units[k].text) <= room * self._max_chars_per_token

    def _line(self, k: int) -> int:
        unit = self.units[k]
        if unit.tokens < 0:
            unit.tokens = self.count(unit.text) + 1
        return unit.tokens

    def _label(self, seg: int) -> int:
        speaker = self.segments[seg].speaker
        if speaker not in self._labels:
            self._labels[speaker] = self.count(f"[{speaker}] ")
        return self._labels[speaker]

    def _joint(self, k: int, prev: int | None) -> int:
        """What unit ``k`` costs beyond its own line when ``prev`` is the selected unit before it."""
        cost = 0
        if prev is None or self.units[prev].seg != self.units[k].seg:
            cost += self._label(self.units[k].seg)
        if prev is not None and self._skips(prev, k):
            cost += self._gap
        return cost

    def delta(self, k: int) -> int:
        """Cost change of adding unit ``k`` (or, negated, of removing it if selected)."""
        chosen = self.chosen
        i = bisect_left(chosen, k)
        prev = chosen[i - 1] if i > 0 else None
        j = i + 1 if i < len(chosen) and chosen[i] == k else i
        nxt = chosen[j] if j < len(chosen) else None
        cost = self._line(k) + self._joint(k, prev)
        if nxt is not None:
            cost += self._joint(nxt, k) - self._joint(nxt, prev)
        return cost

    def render(self) -> str:
        lines: list[str] = []
        prev: int | None = None
        for k in self.chosen:
            unit = self.units[k]
            if prev == k - 1 and unit.glue is not None and unit.at == self.units[prev].at + 1:  # same line
                lines[-1] += unit.glue + unit.text
                prev = k
                continue
            if prev is not None and self._skips(prev, k):
                lines.append(GAP)
            if prev is None or self.units[prev].seg != unit.seg:
                lines.append(f"[{self.segments[unit.seg].speaker}] {unit.text}")
            else:
                lines.append(unit.text)
            prev = k
        if self.trailer:
            lines.append(self.trailer)
        return "\n".join(lines)

    def select(self, budget: int) -> None:
        """Greedy by score, where a key token already kept by a chosen unit counts less.

        Scores only fall as more facts are kept, so a unit is rescored only when it reaches the
        top of the heap (lazy greedy); ties go to the earlier unit.
        """
        heap = [(-u.score, k) for k, u in enumerate(self.units)]
        heapify(heap)
        known: set[str] = set()
        known_words: set[bytes] = set()
        used = 0
        while heap and budget - used > 0:
            pace()
            neg, k = heappop(heap)
            unit = self.units[k]
            if (known or known_words) and unit.signals is not None and (unit.signals.keys or unit.words):
                now = unit.value(known, known_words)
                if now < -neg:  # stale: queue it again with what it is worth now
                    heappush(heap, (-now, k))
                    continue
            if not self._may_fit(k, budget - used):
                continue
            d = self.delta(k)
            if used + d <= budget:
                insort(self.chosen, k)
                used += d
                if unit.signals is not None:
                    known |= unit.signals.keys
                    known_words |= unit.words

    def fill(self, order: Sequence[int], used: int, budget: int) -> list[int]:
        """Add units in ``order`` while the estimate stays within ``budget``; returns those added."""
        added: list[int] = []
        chosen = set(self.chosen)
        for k in order:
            pace()
            if budget - used <= 0:
                break
            if k in chosen or not self._may_fit(k, budget - used):
                continue
            d = self.delta(k)
            if used + d <= budget:
                insort(self.chosen, k)
                chosen.add(k)
                added.append(k)
                used += d
        return added

    def trim(self, overshoot: int, drastic: bool) -> None:
        """Drop the lowest-scored units until the estimate has shed ``overshoot`` tokens."""
        by_score = sorted(self.chosen, key=lambda k: (self.units[k].score, -k))
        if drastic:  # the estimate keeps being wrong: halve the selection
            drop = set(by_score[: max(1, len(by_score) // 2)])
            self.chosen = [k for k in self.chosen if k not in drop]
            return
        shed = 0
        for k in by_score:
            shed += self.delta(k)
            self.chosen.pop(bisect_left(self.chosen, k))
            if shed > overshoot:
                break


class _Raw(NamedTuple):
    seg: int
    text: str
    bonus: float
    glue: str | None  # what joins it to the unit before it in its line (None: it starts a line)
    factor: float = 1.0  # COMMON_FACTOR for a line of a repetitive template
    synthetic: bool = False  # a group's line made here (left out when everything fits)


def _new_raw(fields: tuple[int, str, float, str | None, float, bool]) -> _Raw:
    return tuple.__new__(_Raw, fields)  # a span has many units: no Python-level constructor


def _raw_units(segments: Sequence[Segment], fields: set[str], chat: bool) -> list[_Raw]:
    """The span's distinct units in span order, with their position bonuses (none but
    ``FIRST_BONUS`` in a ``chat``) and, outside a chat, what their templates earn
    (:func:`marks.template_marks`); the field names of its JSON go into ``fields``."""
    last = max(1, len(segments) - 1)
    raw: list[_Raw] = []
    seen_text: set[str] = set()
    for s, seg in enumerate(segments):
        pace()
        bonus = 0.0 if chat else RECENT_BONUS * s / last + (USER_BONUS if seg.speaker == "user" else 0.0)
        dropped = False  # the unit before was a duplicate: the next one cannot join it
        cut = cut_units(seg.text, fields)
        marked = None if chat or not may_mark(seg.speaker, len(cut)) else template_marks(seg.speaker, cut)
        if marked is None:  # most segments: nothing their templates earn (as in a chat)
            for n, (text, glue) in enumerate(cut):
                if text in seen_text:
                    dropped = True
                    continue
                seen_text.add(text)
                unit = (s, text, bonus + (FIRST_BONUS if n == 0 else 0.0), None if dropped else glue, 1.0, False)
                raw.append(tuple.__new__(_Raw, unit))  # no Python-level constructor: a span has many units
                dropped = False
            continue
        marks, factors, groups = marked
        for n, (text, glue) in enumerate(cut):
            group = groups.get(n)
            if group is not None and group not in seen_text:
                seen_text.add(group)
                raw.append(_new_raw((s, group, bonus + GROUP_BONUS, None, COMMON_FACTOR, True)))
                dropped = True
            if text in seen_text:
                dropped = True
                continue
            seen_text.add(text)
            first = FIRST_BONUS if n == 0 and factors[n] == 1.0 else 0.0  # a group's line stands for its first
            unit = (s, text, bonus + first + marks[n], None if dropped else glue, factors[n], False)
            raw.append(tuple.__new__(_Raw, unit))
            dropped = False
    return raw


def _chars_per_token(raw: Sequence[_Raw], count: Callable[[str], int]) -> float:
    """Characters per token of the units, from an even sample of ``SAMPLE_UNITS`` (all of a smaller span)."""
    sample = "\n".join(r.text for r in raw[:: max(1, len(raw) // SAMPLE_UNITS)])
    return len(sample) / max(1, count(sample))


def _chat_bonus(text: str) -> float:
    """What a chat adds to a unit's bonus: ``HEADER_BONUS`` for a header, else ``SELF_BONUS`` for
    a line in the first person."""
    return HEADER_BONUS if is_header(text) else SELF_BONUS if speaks_of_self(text) else 0.0


def _prefilter(raw: list[_Raw], chars: int, max_chars: float, chat: _ChatWords | None) -> list[int]:
    """The positions of the units worth scoring: all of them if they hold (``chars``) at most
    ``max_chars`` characters, else the best up to that size (by :func:`prescore.prescores`, or in a
    chat by :func:`chat.chat_prescores`), in span order."""
    if chars <= max_chars:
        return list(range(len(raw)))
    texts = [r.text for r in raw]
    if chat is None:
        scores = prescores(texts, [r.bonus for r in raw], [r.factor for r in raw])
    else:
        bonuses = [r.bonus + _chat_bonus(r.text) for r in raw]
        scores = chat_prescores(texts, bonuses, chat.words, chat.weights, WORD_WEIGHT)
    return best_within(texts, scores, max_chars)


@dataclass(frozen=True, slots=True)
class _ChatWords:
    """The words of each unit of a chat span, and their rarity over the span."""

    words: list[frozenset[bytes]]
    weights: dict[bytes, float]

    @classmethod
    def of(cls, raw: Sequence[_Raw]) -> _ChatWords:
        found = [words(r.text) for r in raw]
        return cls(found, rarity_weights(found, len(found)))


def is_chat(segments: Sequence[Segment]) -> bool:
    """Whether a span is plain conversation: no tool calls nor tool results."""
    return not any(seg.speaker.startswith("tool ") or seg.speaker == "tool" for seg in segments)


def _scored(raw: Sequence[_Raw], keep: Sequence[int], chat: _ChatWords | None) -> list[_Unit]:
    """The units at the positions ``keep`` of ``raw`` with their signals and scores; in a ``chat``
    span, weighed by the rarity of their words (over the span) and key tokens (over these units)."""
    units: list[_Unit] = []
    seen_shape: set[str] = set()
    scan = KeyScanner()
    for k in keep:
        pace()
        r = raw[k]
        s, text, bonus, glue = r.seg, r.text, r.bonus, r.glue
        found = signals(text, scan)
        factor = r.factor
        found_words: frozenset[bytes] = frozenset()
        if found is not None:
            key = shape(text)
            factor *= REPEAT_FACTOR if key in seen_shape else 1.0
            seen_shape.add(key)
            if chat is not None:
                bonus += _chat_bonus(text)
                found_words = chat.words[k]
            elif is_header(text):
                bonus += HEADER_BONUS
        units.append(_Unit(s, text, found, factor, bonus, k, glue, found_words, r.synthetic))
    if chat is not None:
        live = [u.signals.keys for u in units if u.signals is not None]
        key_weights = {k: max(KEY_FLOOR, w) for k, w in rarity_weights(live, len(live)).items()}
        rarity = _Rarity(key_weights, chat.weights)
        for unit in units:
            unit.rarity = rarity
    for unit in units:
        pace()
        unit.score = unit.value(set(), set())
    return units


def _index(
    units: Sequence[_Unit], chosen: Sequence[int], fields: set[str], room: int, count: Callable[[str], int]
) -> str:
    """``[also mentioned] a b …``: the key tokens of ``units`` that the ``chosen`` ones do not
    quote, most frequent first (then in order of appearance), as many as ``room`` tokens hold.
    Separated by spaces (a key token has none; ", " would cost a token each). JSON field names
    are schema, not facts: they are left out; so are groups' lines (they quote no fact of their own)."""
    quoted: set[str] = set(fields)
    for k in chosen:
        signals = units[k].signals
        if signals is not None:
            quoted |= signals.keys
    freq: dict[str, int] = {}
    first: dict[str, int] = {}
    for i, unit in enumerate(units):
        if unit.signals is not None and not unit.synthetic:
            for key in unit.signals.keys:
                freq[key] = freq.get(key, 0) + 1
                first.setdefault(key, i)
    missing = sorted((k for k in freq if k not in quoted), key=lambda k: (-freq[k], first[k], k))
    return index_line(missing, room, count)


def condense(segments: Sequence[Segment], budget_tokens: int, count: Callable[[str], int]) -> str:
    """The most informative units of ``segments`` in their order, then the index of the facts they
    do not quote, within ``budget_tokens``.

    ``count`` measures tokens. The result counts at most ``budget_tokens`` (or is ``""`` when not
    even one unit fits); when everything fits, everything is kept (and there is no index).
    """
    if budget_tokens <= 0:
        return ""
    fields: set[str] = set()
    plain = is_chat(segments)
    raw = _raw_units(segments, fields, plain)
    if not raw:
        return ""
    # Units more than SCORED_SHARE budgets long are prescored first; more than ALL_FIT_SHARE
    # budgets long surely do not all fit (estimated; exact for spans of up to SAMPLE_UNITS units).
    chars = sum(len(r.text) for r in raw)
    chars_per_token = _chars_per_token(raw, count)
    chat = _ChatWords.of(raw) if plain else None
    units = _scored(raw, _prefilter(raw, chars, SCORED_SHARE * budget_tokens * chars_per_token, chat), chat)
    sel = _Selection(units, segments, count, chars_per_token)
    if sum(len(u.text) for u in units if not u.synthetic) <= ALL_FIT_SHARE * budget_tokens * chars_per_token:
        sel.chosen = [k for k, u in enumerate(units) if not u.synthetic]
        text = sel.render()
        if count(text) <= budget_tokens:
            return text

    sel.chosen = []
    order = sorted(range(len(units)), key=lambda k: (-units[k].score, k))
    compression = budget_tokens * chars_per_token / max(1, chars)
    lines_budget = budget_tokens - int(index_share(compression) * budget_tokens)
    sel.select(lines_budget)
    text = sel.render()
    used = count(text) if sel.chosen else 0
    rounds = 0
    while sel.chosen and used > lines_budget:
        sel.trim(used - lines_budget, drastic=rounds >= _SLOW_TRIM_ROUNDS)
        rounds += 1
        text = sel.render()
        used = count(text) if sel.chosen else 0
    if not sel.chosen:  # the estimates are pessimistic: try the best units alone, exactly
        for k in order:
            sel.chosen = [k]
            text = sel.render()
            used = count(text)
            if used <= budget_tokens:
                break
        else:
            return ""
    sel.trailer = _index(units, sel.chosen, fields, budget_tokens - used - 1, count)
    if sel.trailer:
        text = sel.render()
        used = count(text)
        if used > budget_tokens:  # the line break joined tokens differently: no index
            sel.trailer = ""
            text = sel.render()
            used = count(text)
    for _ in range(_MAX_FILL_ROUNDS):  # the estimates were high or the index short: spend the slack
        added = sel.fill(order, used, budget_tokens)
        if not added:
            break
        candidate = sel.render()
        n = count(candidate)
        if n > budget_tokens:
            drop = set(added)
            sel.chosen = [k for k in sel.chosen if k not in drop]
            break
        text, used = candidate, n
    real = [k for k, u in enumerate(units) if not u.synthetic]
    if len(real) < len(sel.chosen) and set(real) <= set(sel.chosen):  # all kept: the groups' lines say nothing
        chosen, trailer = sel.chosen, sel.trailer
        sel.chosen, sel.trailer = real, ""
        candidate = sel.render()
        if count(candidate) <= budget_tokens:
            return candidate
        sel.chosen, sel.trailer = chosen, trailer
    return text


def condense_summary(summary: str, budget_tokens: int, count: Callable[[str], int]) -> str:
    """An earlier summary alone, condensed into ``budget_tokens``: its rare lines and the facts of
    its index first, as when it is extended (without the label a segment's first line gets); or,
    where that keeps fewer of its facts (a budget too small for more than a line or two), the
    index of its facts alone."""
    lines = condense([Segment(SUMMARY_SPEAKER, summary)], budget_tokens, count).removeprefix(f"[{SUMMARY_SPEAKER}] ")
    index = missing_facts_index(summary, "", budget_tokens, count)
    return index if fact_retention(summary, index) > fact_retention(summary, lines) else lines
