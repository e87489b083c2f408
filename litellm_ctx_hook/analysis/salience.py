"""Key tokens and line salience (pure): what a condensed text must not lose.

**Key tokens** (:func:`key_tokens`) are the facts a later turn is likely to need verbatim:

- numbers with at least two characters: amounts (``1,234.50``, ``$120``, ``15%``), dates and times
  (``2024-05-15``, ``05/15/2024``, ``14:30``), versions (``3.11``, ``v1.2.3``), ``#123``;
- identifiers: ``snake_case`` / ``CONSTANT_CASE``, ``camelCase`` / ``PascalCase`` with an inner
  capital (``TypeError``), dotted names (``os.path.join``, ``README.md``), anything mixing letters
  and digits (``HAT136``, ``4WQ150``, ``mia_li_3668``, UUIDs, hashes, ``toolu_01AbC``), and short
  all-capitals codes (``JFK``, ``USD``);
- file paths (``/x/y.py``, ``./run.sh``, ``src/a/b.ts``, ``C:\\x\\y``), URLs, e-mail addresses;
- Proper Names: capitalised words that do not start a sentence (``Mia``, ``Houston``).

Tokens are taken as written (case kept) after stripping surrounding quotes, markup, trailing
punctuation and a possessive ``'s``. The scan is linear: one regex with possessive quantifiers
skips separators and plain lower-case words in C and stops at the next chunk worth a look; each
such chunk (at most ``_MAX_CHUNK`` characters: longer ones are blobs, not facts, except URLs) is
classified by anchored patterns on the chunk alone, so nothing backtracks across the text. A
:class:`KeyScanner` remembers the chunks it classified, which pays off across many lines.

**Line score** (:func:`line_score`) says how informative one line or sentence is::

    raw   = 1.0                                  any line with a letter or digit and >= 3 chars
          + 1.0 per distinct key token            (0.2 if a caller says it is already kept)
          + 1.5 if it asks a question             ("?" ending a word)
          + 1.0 per distinct decision/outcome word, at most 3
                                                  (decided, will, must, should, fixed, error,
                                                   failed, exception, traceback, TODO, confirmed,
                                                   cancelled, booked, refund, ...)
          + 2.0 if it is an error line            (starts with Traceback, ValueError:, ERROR,
                                                   FAILED, fatal:, panic:, pytest's "E   ", ...)
    raw  *= 0.5 if it is short (< 16 chars) and has no key token ("ok", "Done.", "else:")
    score = raw / (1 + len(line) / 200)           long lines pay for the tokens they use

:func:`signals` returns these parts so a caller can rescore a line as facts get kept elsewhere
(the condenser's greedy selection does: a repeated id adds little the second time).
A line of fewer than three characters or without any letter or digit (separators such as
``-----``, ``|---|``, ``}``) scores 0. Repetition is a property of a line among others, so the
condenser applies it: a line whose :func:`shape` (digits folded, case and spacing ignored) was
already seen scores ``REPEAT_FACTOR`` times less, and exact duplicates are dropped.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from itertools import repeat

__all__ = [
    "REPEAT_FACTOR",
    "KeyScanner",
    "LineSignals",
    "fact_retention",
    "key_tokens",
    "line_score",
    "shape",
    "signals",
]

KEY_WEIGHT = 1.0
KNOWN_KEY_WEIGHT = 0.2
QUESTION_WEIGHT = 1.5
DECISION_WEIGHT = 1.0
DECISION_CAP = 3
ERROR_WEIGHT = 2.0
SHORT_LINE = 16
SHORT_FACTOR = 0.5
LENGTH_NORM = 200
REPEAT_FACTOR = 0.5

_MAX_CHUNK = 256
_MAX_URL = 4096
_MEMO_SIZE = 1 << 16  # distinct chunks a KeyScanner remembers

# A chunk: a run of characters that are neither whitespace nor brackets/quotes/pipes/semicolons.
# One match = the separators and plain lower-case words (with trailing punctuation) skipped in C,
# then the next chunk worth a look. Possessive quantifiers: nothing is ever re-scanned.
_SEP = r"\s\"`<>()\[\]{}|;"
_SEPARATORS = ' \t\n\r\f\v"`<>()[]{}|;'
_CHUNK = re.compile(rf"((?:(?:[a-z][a-z'’-]*+[,.!?:]*+)?+[{_SEP}]++)*+)([^{_SEP}]*+)")
_LEAD = "'\"`*#@~^!?,:;…"  # not "." (./x, ../x) nor "-" (negative numbers)
_TRAIL = "'\"`*.,;:!?…-"
_SPLIT = re.compile(r"[=,':&*/\\+]+")

_URL = re.compile(r"(?:[A-Za-z][A-Za-z0-9+.-]*://|www\.)\S+")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_DIGITY = re.compile(r"[-+]?[$€£¥]?[vV]?\d(?:[\d.,:/_-]*\d)?%?|[A-Za-z0-9][\w.:#+-]*")
_WIN_PATH = re.compile(r"(?:[A-Za-z]:\\|\\\\)[^\s\\]+(?:\\[^\s\\]*)*")
_PATH = re.compile(r"(?:~|\.{1,2})?/?[\w.@+~%-]+(?:[/\\][\w.@+~%:-]*)+|/[\w.@+~%-]+")
_PATH_EXT = re.compile(r"\.[A-Za-z0-9]{1,8}(?::\d+)*$")
_SNAKE = re.compile(r"_*[A-Za-z][A-Za-z0-9]*(?:_+[A-Za-z0-9]+)+_*")
_WORD = re.compile(r"[A-Za-z_$][\w$]*")
_INNER_CAP = re.compile(r"[a-z][A-Z]")
_DOTTED = re.compile(r"[A-Za-z_][\w-]*(?:\.[A-Za-z_][\w-]*)+")
_HAS_DIGIT = re.compile(r"\d")
_CAPS = re.compile(r"[A-Z]{2,6}")
_NAME = re.compile(r"[A-Z][a-z]+(?:['’-][A-Za-z][a-z]*)*")
_SENTENCE_END = frozenset(".!?:…")

# Words often capitalised mid-sentence that are no names, and capitals that are no codes.
_NOT_NAMES = frozenset(
    str.split(
        "A An The This That These Those It Its If In On At By For From With And But Or Nor So To Of As "
        "We You He She They I Me My Your Our Their His Her Us Them Yes No Ok Okay Please Thanks Thank "
        "Hi Hello Hey Let Here There Now Then Also Note What When Where Why How Which Who Whom Whose "
        "Is Are Was Were Be Been Do Does Did Can Could Would Should Shall Might Must Has Have "
        "Had Not True False None Null Sure Great Good Done Next First Second Finally However Otherwise "
        "Unfortunately Alright Just Only All Any Each Every Some Both Either Neither After Before"
    )
)
_NOT_CODES = frozenset(
    str.split(
        "OK NO YES AND OR NOT THE IF ALL ANY ONLY MUST NEVER NOTE TODO FIXME ERROR WARN INFO DEBUG "
        "FAIL FATAL PASS NONE NULL TRUE FALSE IS IT TO OF IN ON AT BE DO"
    )
)

_QUESTION = re.compile(r"\?(?=[\s\"'`)\]]|$)")
_DECISION = re.compile(
    r"\b(decided|decision|agreed|will|must|should|need(?:s|ed)?|fix(?:ed|es)?|resolved|error|errors|"
    r"fail(?:ed|s|ure|ing)?|exception|traceback|todo|fixme|confirm(?:ed|ation)?|cancel(?:led|ed|lation)?|"
    r"booked|refund(?:ed|s)?|approved|denied|rejected|succeeded|success(?:ful)?|completed|blocked|"
    r"root cause|because|deadline|important)\b"
)  # matched against the lower-cased line (faster than re.IGNORECASE)
_ERROR_LINE = re.compile(
    r"\s*(?:Traceback\b|[\w.]*(?:Error|Exception|Fault)\b|(?:ERROR|FATAL|FAIL(?:ED|URE)?|CRITICAL)\b|"
    r"(?:fatal|panic|error|failed)(?:\[\w+\])?:|E {2,}\S|npm ERR!|Caused by:)"
)
_ALNUM = re.compile(r"[^\W_]")
_DIGITS = re.compile(r"\d+")
_SPACES = re.compile(r"\s+")


def _is_path(core: str) -> bool:
    if _WIN_PATH.fullmatch(core):
        return True
    if not _PATH.fullmatch(core) or not _ALNUM.search(core):
        return False
    if core.startswith(("/", "~/", "./", "../", "\\")) or core.endswith(("/", "\\")):
        return True
    return core.count("/") + core.count("\\") >= 2 or bool(_PATH_EXT.search(core))


_NOT_KEY, _KEY, _NAME_KEY = 0, 1, 2  # _NAME_KEY: a key only when it does not start a sentence


def _kind(core: str) -> int:
    """Whether a cleaned chunk is a key token."""
    if len(core) < 2:
        return _NOT_KEY
    if "@" in core and _EMAIL.fullmatch(core):
        return _KEY
    if ("/" in core or "\\" in core) and _is_path(core):
        return _KEY
    if _HAS_DIGIT.search(core) is not None:  # numbers, dates, versions, ids such as HAT136
        return _KEY if _DIGITY.fullmatch(core) else _NOT_KEY
    if "_" in core and _SNAKE.fullmatch(core):
        return _KEY
    if "." in core and _DOTTED.fullmatch(core) and any(len(c) > 1 for c in core.split(".")):
        return _KEY
    if _WORD.fullmatch(core) and _INNER_CAP.search(core):
        return _KEY
    if _CAPS.fullmatch(core):
        return _NOT_KEY if core in _NOT_CODES else _KEY
    return _NAME_KEY if _NAME.fullmatch(core) is not None and core not in _NOT_NAMES else _NOT_KEY


def _clean(chunk: str) -> str:
    if chunk[0].isalnum() and chunk[-1].isalnum() and "'" not in chunk and "’" not in chunk:
        return chunk
    core = chunk.rstrip(_TRAIL)
    if core.endswith(("'s", "’s")):
        core = core[:-2]
    core = core.lstrip(_LEAD)
    if core.startswith("..") and not core.startswith(("../", "..\\")):
        core = core.lstrip(".")  # an ellipsis glued to a word
    if core.startswith("-") and not core[1:2].isdigit():
        core = core.lstrip("-")
    return core


_Info = tuple[tuple[str, ...], tuple[str, ...], bool | None]


def _chunk_info(chunk: str) -> _Info:
    """(keys mid-sentence, keys at a sentence start, sentence start after it or None: unchanged)."""
    if chunk.isalpha():  # a capitalised or non-ASCII word (plain lower-case ones never get here)
        kind = _kind(chunk) if len(chunk) <= _MAX_CHUNK else _NOT_KEY
        if kind == _NOT_KEY:
            return (), (), False
        return (chunk,), ((chunk,) if kind == _KEY else ()), False
    if "://" in chunk or chunk.startswith("www."):
        url = chunk.rstrip(_TRAIL + ")")
        if len(url) <= _MAX_URL and _URL.fullmatch(url):
            return (url,), (url,), False
    mid: tuple[str, ...] = ()
    first: tuple[str, ...] = ()
    if len(chunk) <= _MAX_CHUNK:
        core = _clean(chunk)
        kind = _kind(core)
        if kind != _NOT_KEY:
            mid = (core,)
            first = mid if kind == _KEY else ()
        elif _SPLIT.search(core):
            pieces = (_clean(p) for p in _SPLIT.split(core) if p)
            mid = first = tuple(p for p in pieces if p and _kind(p) != _NOT_KEY)
    if _ALNUM.search(chunk):
        return mid, first, chunk[-1] in _SENTENCE_END
    if chunk[-1] in _SENTENCE_END and chunk[-1] != ":" and chunk[0] not in "-*#>":  # not JSON's ":"
        return mid, first, True
    return mid, first, None  # punctuation such as a bullet: the sentence state stays


class KeyScanner:
    """:func:`key_tokens` with a memory of the chunks it classified, for scanning many lines.

    One scanner per job (the condenser makes one per call); it remembers at most
    ``_MEMO_SIZE`` distinct chunks.
    """

    __slots__ = ("_memo",)

    def __init__(self) -> None:
        self._memo: dict[str, _Info] = {}

    def __call__(self, text: str) -> frozenset[str]:
        found: set[str] = set()
        memo = self._memo
        start = True  # at the start of a sentence (Proper Names do not count there)
        for m in _CHUNK.finditer(text):
            skipped, chunk = m.group(1, 2)
            if not chunk:  # the end of the text
                break
            if skipped:
                words = skipped.rstrip(_SEPARATORS)
                if "\n" in skipped[len(words) :]:
                    start = True
                elif words:
                    start = words[-1] in _SENTENCE_END
            info = memo.get(chunk)
            if info is None:
                info = _chunk_info(chunk)
                if len(memo) < _MEMO_SIZE:
                    memo[chunk] = info
            keys = info[1] if start else info[0]
            if keys:
                found.update(keys)
            if info[2] is not None:
                start = info[2]
        return frozenset(found)


def key_tokens(text: str) -> frozenset[str]:
    """The numbers, identifiers, paths, URLs, e-mail addresses and Proper Names in ``text``."""
    return KeyScanner()(text)


@dataclass(frozen=True, slots=True)
class LineSignals:
    """What :func:`line_score` sees in a line, so a caller can rescore it as facts get kept."""

    keys: frozenset[str]
    base: float  # 1 + question + decisions + error line
    length: int

    def score(
        self,
        known: AbstractSet[str] = frozenset(),
        weights: Mapping[str, float] | None = None,
        extra: float = 0.0,
        length_norm: float = LENGTH_NORM,
    ) -> float:
        """The line's score when the key tokens in ``known`` are already kept elsewhere.

        ``weights`` scales each key token (default 1: a caller may weigh them by rarity, see
        :mod:`rarity`); ``extra`` is added to the raw score before the length normalisation, which
        divides by ``1 + length / length_norm``."""
        if weights is None:
            new = sum(1 for k in self.keys if k not in known) if known else len(self.keys)
            raw = self.base + KEY_WEIGHT * new + KNOWN_KEY_WEIGHT * (len(self.keys) - new)
        else:
            get = weights.get
            total = sum(map(get, self.keys, repeat(1.0)))
            fresh = sum(get(k, 1.0) for k in self.keys if k not in known) if known else total
            raw = self.base + KEY_WEIGHT * fresh + KNOWN_KEY_WEIGHT * (total - fresh)
        raw += extra
        if self.length < SHORT_LINE and not self.keys and not extra:
            raw *= SHORT_FACTOR
        return raw / (1.0 + self.length / length_norm)


def signals(line: str, scan: Callable[[str], frozenset[str]] = key_tokens) -> LineSignals | None:
    """The signals of a line, or ``None`` for boilerplate (too short, no letter or digit).

    ``scan`` finds the key tokens: pass one :class:`KeyScanner` when scoring many lines.
    """
    stripped = line.strip()
    if len(stripped) < 3 or _ALNUM.search(stripped) is None:
        return None
    base = 1.0
    if _QUESTION.search(stripped):
        base += QUESTION_WEIGHT
    decisions = set(_DECISION.findall(stripped.lower()))
    base += DECISION_WEIGHT * min(len(decisions), DECISION_CAP)
    if _ERROR_LINE.match(stripped):
        base += ERROR_WEIGHT
    return LineSignals(scan(stripped), base, len(stripped))


def line_score(line: str) -> float:
    """How informative one line or sentence is (see the module docstring for the weights)."""
    found = signals(line)
    return 0.0 if found is None else found.score()


def shape(line: str) -> str:
    """A line with digits folded to ``0``, spacing collapsed and case ignored: repeats share it."""
    return _SPACES.sub(" ", _DIGITS.sub("0", line.strip())).lower()


def fact_retention(source: str, condensed: str) -> float:
    """Share of the key tokens of ``source`` found verbatim in ``condensed`` (1.0 if it has none)."""
    keys = key_tokens(source)
    if not keys:
        return 1.0
    present = key_tokens(condensed)
    kept = sum(1 for k in keys if k in present or k in condensed)
    return kept / len(keys)
