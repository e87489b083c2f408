"""How the condenser cuts a segment's text into units (pure).

A unit is a non-empty line of the :func:`readable` text (JSON as ``key=value`` lines); a line
longer than ``LONG_LINE`` characters is cut into sentences, and a sentence still that long
(one-line JSON, minified code) into runs of comma/semicolon-separated clauses of about ``PIECE``
characters; a unit longer than ``MAX_UNIT`` characters keeps its head and tail around `` … ``.
Every unit is a stripped slice of the readable text (or the middle cut of one), and says how it
joins the unit before it in its line, so that kept neighbours can be put back on one line.
"""

from __future__ import annotations

import re

from ...analysis.readable import readable

__all__ = ["GAP", "LONG_LINE", "MAX_UNIT", "PIECE", "cut_units"]

LONG_LINE = 240
PIECE = 200
MAX_UNIT = 400
GAP = "…"

_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+")
_CLAUSE_BREAK = re.compile(r"(?<=[,;])\s*")


def _middle_cut(unit: str) -> str:
    if len(unit) <= MAX_UNIT:
        return unit
    half = (MAX_UNIT - 3) // 2
    return f"{unit[:half].rstrip()} {GAP} {unit[-half:].lstrip()}"


def _slices(text: str, breaks: re.Pattern[str], target: int) -> list[str]:
    """``text`` cut at ``breaks`` into stripped pieces of at most ``target`` chars where possible."""
    out: list[str] = []
    start = prev = 0
    for cut in [m.end() for m in breaks.finditer(text)] + [len(text)]:
        if cut - start > target and prev > start:
            out.append(text[start:prev].strip())
            start = prev
        prev = cut
    out.append(text[start:].strip())
    return [p for p in out if p]


def cut_units(text: str, fields: set[str]) -> list[tuple[str, str | None]]:
    """The units of a segment's text, each with ``None`` if it starts a line, else what joins it to
    the unit before it in that line (``" "`` or ``""``, as in the text)."""
    units: list[tuple[str, str | None]] = []
    for raw in readable(text, fields).splitlines():
        line = raw.strip()
        if not line:
            continue
        if len(line) <= LONG_LINE:
            units.append((line, None))
            continue
        pieces = [
            _middle_cut(p)
            for sentence in _slices(line, _SENTENCE_BREAK, 0)
            for p in ([sentence] if len(sentence) <= LONG_LINE else _slices(sentence, _CLAUSE_BREAK, PIECE))
        ]
        pos = 0  # where the previous piece ended in the line
        for n, piece in enumerate(pieces):
            head, _, tail = piece.partition(f" {GAP} ")  # a middle-cut piece: its head, then its tail
            at = line.find(head, pos)
            if at < 0:  # not found (cannot happen: pieces are slices in order): a space, and go on
                units.append((piece, None if n == 0 else " "))
                continue
            units.append((piece, None if n == 0 else " " if at > 0 and line[at - 1].isspace() else ""))
            pos = at + len(head)
            if tail:
                end = line.find(tail, pos)
                pos = end + len(tail) if end >= 0 else pos
    return units
