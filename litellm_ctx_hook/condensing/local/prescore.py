"""A cheap first ranking of a long span's units (pure): only the best get the full scoring.

Scoring every line of a span twenty times the budget cost four times the tokenizer's time and kept
no more facts. :func:`prescores` guesses each unit's score from its bytes, in C: its fact-like
characters (digits, capitals, ``_/.@\\:``, at most ``PRESCORE_FACT_CAP``) stand in for key tokens,
per length, and a line whose digits and case fold to one seen before counts ``REPEAT_FACTOR`` as
much; no regex. A caller's factor scales the guess (a line of a repetitive template counts less).
"""

from __future__ import annotations

from collections.abc import Sequence

from ...analysis.salience import LENGTH_NORM, REPEAT_FACTOR

__all__ = ["PRESCORE_FACT_CAP", "best_within", "prescores"]

PRESCORE_FACT_CAP = 8
_FACT_BYTES = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_/.@\\:"
_FOLD = bytes.maketrans(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"0" * 10 + b"abcdefghijklmnopqrstuvwxyz")


def prescores(texts: Sequence[str], bonuses: Sequence[float], factors: Sequence[float] | None = None) -> list[float]:
    """The guessed score of each text, times its factor (1 by default), plus its bonus."""
    out = []
    seen: set[bytes] = set()
    for text, bonus, factor in zip(texts, bonuses, factors or [1.0] * len(texts), strict=True):
        data = text.encode("utf-8", "surrogatepass")  # a lone surrogate is a byte run like any other
        facts = len(data) - len(data.translate(None, _FACT_BYTES))
        score = (1 + (facts if facts < PRESCORE_FACT_CAP else PRESCORE_FACT_CAP)) / (1 + len(text) / LENGTH_NORM)
        folded = data.translate(_FOLD)
        if folded in seen:
            score *= REPEAT_FACTOR
        seen.add(folded)
        out.append(score * factor + bonus)
    return out


def best_within(texts: Sequence[str], scores: Sequence[float], max_chars: float) -> list[int]:
    """The positions of the best-scored ``texts`` (ties in order) until they hold ``max_chars``
    characters, in order."""
    keep: list[int] = []
    kept = 0
    for k in sorted(range(len(texts)), key=scores.__getitem__, reverse=True):  # stable: ties in order
        if kept >= max_chars:
            break
        keep.append(k)
        kept += len(texts[k])
    return sorted(keep)
