"""The index of facts a condensed text does not quote (pure): ``[also mentioned] HAT136 2024-05-20 …``.

Where the lines of a summary cannot hold every exact value, a last line lists the key tokens
(:mod:`salience`: ids, numbers, paths, names) that its lines do not quote, most frequent first,
space-separated (a key token has no space; ``", "`` would cost a token each), as many as its room
holds. The extractive condenser ends its summaries with one (:func:`index_share` of its budget);
:func:`missing_facts_index` makes one for any summary, e.g. to mend a summariser's that dropped
exact values; :func:`cleared_index` one for tool output cleared to save context, after the lines
its placeholder keeps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

from .readable import readable
from .salience import KeyScanner
from .templates import collapse, is_group_line

__all__ = [
    "INDEX_LABEL", "INDEX_SHARE", "INDEX_SHARE_MAX", "cleared_index", "index_line", "index_share",
    "missing_facts_index",
]  # fmt: skip

INDEX_SHARE = 0.25  # of the budget kept for the index of facts the selected lines do not quote …
INDEX_SHARE_MAX = 0.5  # … up to this at ten times compression and more
INDEX_LABEL = "[also mentioned]"
CLEARED_INDEX_SHARE = 25  # cleared tool output keeps an index of at most 1/25 of its characters …
CLEARED_INDEX_MAX_CHARS = 2000  # … and at most this many (~600 tokens of ids and paths) …
CLEARED_INDEX_MIN_CHARS = 60  # … and none below this many (short output: a few lines of facts at most)
CLEARED_INDEX_MEMO = 256


def index_share(compression: float) -> float:
    """The share of the budget kept for the index, given the budget as a share of the span:
    ``INDEX_SHARE`` down to a quarter of the span; growing to ``INDEX_SHARE_MAX`` at a tenth and
    below, where few lines fit and exact values are worth more than more of them."""
    if compression >= 0.25:
        return INDEX_SHARE
    if compression <= 0.1:
        return INDEX_SHARE_MAX
    return INDEX_SHARE_MAX - (compression - 0.1) / 0.15 * (INDEX_SHARE_MAX - INDEX_SHARE)


def index_line(keys: Sequence[str], room: int, count: Callable[[str], int]) -> str:
    """``[also mentioned]`` and the first of ``keys`` that fit in ``room`` tokens ("" if none fits)."""
    lo, hi = 0, len(keys)  # the most keys whose line fits (counted, log2(n) times)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(f"{INDEX_LABEL} " + " ".join(keys[:mid])) <= room:
            lo = mid
        else:
            hi = mid - 1
    return f"{INDEX_LABEL} " + " ".join(keys[:lo]) if lo else ""


def missing_facts_index(source_text: str, summary: str, room_tokens: int, count: Callable[[str], int]) -> str:
    """``[also mentioned] a b …``: the key tokens of ``source_text`` (ids, numbers, paths, names, as
    the condenser's index has them) that ``summary`` does not contain, most frequent first (by the
    lines holding them, then in order of appearance), as many as ``room_tokens`` hold; ``""`` when
    none is missing or none fits. JSON field names are left out, as in the index. Used to mend a
    summary (e.g. a summariser's) that dropped exact values."""
    if room_tokens <= 0:
        return ""
    return index_line(_missing(source_text, summary), room_tokens, count)


def cleared_index(text: str, kept: str) -> str:
    """The index that stands in for the facts of cleared tool output ``text`` beside what its
    placeholder ``kept``: its key tokens the placeholder does not hold (of repetitive output, those
    of its rare lines only: not the values its common lines vary by), most frequent first, as many
    as ``1/CLEARED_INDEX_SHARE`` of its characters hold (at most ``CLEARED_INDEX_MAX_CHARS``;
    ``""`` below ``CLEARED_INDEX_MIN_CHARS``). Remembered for the last ``CLEARED_INDEX_MEMO``
    texts: clearing tries several sets of parts, and later turns clear the same output again."""
    room = min(CLEARED_INDEX_MAX_CHARS, len(text) // CLEARED_INDEX_SHARE)
    return _cleared_index(text, kept, room) if room >= CLEARED_INDEX_MIN_CHARS else ""


@lru_cache(maxsize=CLEARED_INDEX_MEMO)
def _cleared_index(text: str, kept: str, room: int) -> str:
    keys: list[str] = []
    used = len(INDEX_LABEL)
    rare = "\n".join(line for line in collapse(text).split("\n") if not is_group_line(line))
    for key in _missing(rare, kept):
        if used + 1 + len(key) <= room:  # a long one that does not fit leaves room for shorter ones
            keys.append(key)
            used += 1 + len(key)
    return f"{INDEX_LABEL} " + " ".join(keys) if keys else ""


def _missing(source_text: str, summary: str) -> list[str]:
    """The key tokens of ``source_text`` that ``summary`` does not contain, most frequent first (by
    the lines holding them, then in order of appearance); JSON field names left out."""
    scan = KeyScanner()
    fields: set[str] = set()
    freq: dict[str, int] = {}
    for line in readable(source_text, fields).splitlines():
        for key in sorted(scan(line)):  # sorted: the order of first appearance is deterministic
            freq[key] = freq.get(key, 0) + 1  # insertion order = first appearance
    order = {k: i for i, k in enumerate(freq)}
    return sorted((k for k in freq if k not in fields and k not in summary), key=lambda k: (-freq[k], order[k]))
