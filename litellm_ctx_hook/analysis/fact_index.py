"""The index of facts a condensed text does not quote (pure): ``[also mentioned] HAT136 2024-05-20 …``.

Where the lines of a summary cannot hold every exact value, a last line lists the key tokens
(:mod:`salience`: ids, numbers, paths, names) that its lines do not quote, most frequent first,
space-separated (a key token has no space; ``", "`` would cost a token each), as many as its room
holds. The extractive condenser ends its summaries with one (:func:`index_share` of its budget);
:func:`missing_facts_index` makes one for any summary, e.g. to mend a summariser's that dropped
exact values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .readable import readable
from .salience import KeyScanner

__all__ = ["INDEX_LABEL", "INDEX_SHARE", "INDEX_SHARE_MAX", "index_line", "index_share", "missing_facts_index"]

INDEX_SHARE = 0.25  # of the budget kept for the index of facts the selected lines do not quote …
INDEX_SHARE_MAX = 0.5  # … up to this at ten times compression and more
INDEX_LABEL = "[also mentioned]"


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
    scan = KeyScanner()
    fields: set[str] = set()
    freq: dict[str, int] = {}
    for line in readable(source_text, fields).splitlines():
        for key in sorted(scan(line)):  # sorted: the order of first appearance is deterministic
            freq[key] = freq.get(key, 0) + 1  # insertion order = first appearance
    order = {k: i for i, k in enumerate(freq)}
    missing = sorted((k for k in freq if k not in fields and k not in summary), key=lambda k: (-freq[k], order[k]))
    return index_line(missing, room_tokens, count)
