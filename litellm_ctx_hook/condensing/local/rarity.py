"""How rare a word is within a span (pure): words said everywhere carry little, rare ones the facts.

In a casual chat every other line greets the other person by name ("Hey Nate! Long time no see!"),
so counting names, capitals and question marks ranks greetings above the lines that hold the facts:
an event, a place, a date, a preference, in everyday words. Rarity tells them apart without a
model, like the inverse document frequency of search engines computed over the span's own units:

    r(w) = min(1, ln(N / df(w)) / ln(RARE_UNITS))

where ``N`` is the number of units and ``df(w)`` the number of units holding ``w``: a word found in
at most one unit in ``RARE_UNITS`` weighs 1, a word found in every unit weighs 0 (in a span of
fewer than ``RARE_UNITS`` units, a word found once weighs ``ln N / ln RARE_UNITS``).

*Words* are the lower-cased runs of ASCII letters and digits of a text's UTF-8 bytes (other bytes,
i.e. non-ASCII letters, stay part of words), at least ``MIN_WORD`` bytes long and not stop-words:
one ``bytes.translate`` and one ``split`` per text, in C. The same weight applies to key tokens
(:mod:`salience`), counted by the units whose key tokens include them.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import TypeVar

__all__ = ["MIN_WORD", "RARE_UNITS", "STOP_WORDS", "mass", "rarity_weights", "words"]

K = TypeVar("K", bound=Hashable)

RARE_UNITS = 50
MIN_WORD = 3

_ALNUM = frozenset(b"0123456789abcdefghijklmnopqrstuvwxyz")
# Letters lower-cased, digits and non-ASCII bytes kept, everything else a space.
_TABLE = bytes(c if c in _ALNUM or c >= 128 else c + 32 if 65 <= c <= 90 else 32 for c in range(256))

STOP_WORDS = frozenset(
    w.encode()
    for w in str.split(
        "about above after again against all and any are aren because been before being below between "
        "both but can could couldn did didn does doesn doing don down during each few for from further had "
        "hadn has hasn have haven having her here hers herself him himself his how into isn its itself "
        "just more most myself nor not now off once only other our ours ourselves out over own same she "
        "should shouldn some such than that the their theirs them themselves then there these they this "
        "those through too under until very was wasn were weren what when where which while who whom why "
        "will with won would wouldn you your yours yourself yourselves also get got yeah yes yep okay lol "
        "haha hahaha hmm wow really like well too much many one two lot things thing going know think "
        "sure good great nice"
    )
)


def words(text: str) -> frozenset[bytes]:
    """The distinct words of ``text`` (see the module docstring), as bytes."""
    found = set(text.encode("utf-8", "surrogatepass").translate(_TABLE).split())
    found -= STOP_WORDS
    return frozenset(w for w in found if len(w) >= MIN_WORD)


def rarity_weights(groups: Iterable[AbstractSet[K]], units: int) -> dict[K, float]:
    """``r(x)`` for every item of ``groups`` (one set per unit; ``units`` of them in all)."""
    df: Counter[K] = Counter()
    for group in groups:
        df.update(group)
    if units <= 1:
        return dict.fromkeys(df, 0.0)
    scale = 1.0 / math.log(RARE_UNITS)
    return {item: min(1.0, math.log(units / n) * scale) for item, n in df.items()}


def mass(items: AbstractSet[K], weights: Mapping[K, float], known: AbstractSet[K] = frozenset()) -> float:
    """The summed rarity of ``items`` that are not in ``known`` (items without a weight weigh 0)."""
    new = items - known if known else items
    get = weights.get
    return sum(get(w, 0.0) for w in new)
