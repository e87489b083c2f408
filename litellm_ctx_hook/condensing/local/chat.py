"""Cues of plain conversation (pure): what the condenser favours in a chat besides rare words.

In a chat between people (no tool calls or results), what later turns ask about is what the
speakers said of themselves: their plans, places, likes, the events of their days. A line in the
first person (:func:`speaks_of_self`) is where such facts are; a bracketed line with a digit
(:func:`is_header`, e.g. ``[Session 3 — 2024-01-05 20:00]``) dates everything after it.
:func:`chat_prescores` ranks a long chat's lines cheaply with these cues and the rarity of their
words (:mod:`rarity`), before the full scoring: the byte-level prescore of agent traces, which
counts digits and capitals, sees none of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ...analysis.salience import LENGTH_NORM, REPEAT_FACTOR
from .rarity import mass

__all__ = ["CHAT_LENGTH_NORM", "chat_prescores", "is_header", "speaks_of_self"]

# A chat's facts sit in short turns ("I love eating pho"): its lines are ranked by what they hold
# per length more strictly than the lines of agent traces (``salience.LENGTH_NORM``, 200).
CHAT_LENGTH_NORM = 50

_SELF = tuple(f" {w} " for w in ("i", "i'm", "i’m", "i've", "i’ve", "i'd", "i’d", "im", "ive", "my", "me", "we", "our"))


def is_header(text: str) -> bool:
    """A bracketed line with a digit: a session or date header such as ``[Session 3 — 2024-01-05]``."""
    return text[:1] == "[" and text[-1:] == "]" and any(c.isdigit() for c in text)


def speaks_of_self(text: str) -> bool:
    """Whether a line speaks in the first person."""
    padded = f" {text.lower()} "
    return any(p in padded for p in _SELF)


def chat_prescores(
    texts: Sequence[str],
    bonuses: Sequence[float],
    word_sets: Sequence[frozenset[bytes]],
    weights: Mapping[bytes, float],
    word_weight: float,
) -> list[float]:
    """A cheap guess at each chat line's score: ``1 + word_weight`` times the rarity of its words,
    per length as the full score has it, plus its bonus; a repeated line counts ``REPEAT_FACTOR``
    as much. (The cues of :func:`speaks_of_self` and :func:`is_header` are the caller's bonuses.)"""
    out = []
    seen: set[str] = set()
    for text, bonus, found in zip(texts, bonuses, word_sets, strict=True):
        score = (1.0 + word_weight * mass(found, weights)) / (1 + len(text) / LENGTH_NORM)
        folded = text.lower()
        if folded in seen:
            score *= REPEAT_FACTOR
        seen.add(folded)
        out.append(score + bonus)
    return out
