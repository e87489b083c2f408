"""Lines that share a template, and the rare ones among them (pure, deterministic).

Tool output is mostly lines that share a template: a log's hundred ``INFO worker-3 batch=17 …``
lines, a test run's ``PASSED`` lines, a listing's files, a JSON array's records. What an agent needs
later is the line that differs: the failure, the warning, the note, the changed value.

A line's **template** (:func:`template`) is the line with its variable parts masked as ``*``:
quoted values, UUIDs, dates and times, paths and file names (their extension kept: ``*.py``), and
any word holding a digit (numbers, versions, hex checksums, ids such as ``worker-3``'s ``3``,
``HAT136``, ``mia_li_3668``); spacing is collapsed. A test runner's pass line (``✓ renders header``,
``--- PASS: TestX``, ``ok  pkg/x``) is its marker alone, and a long listing's line (``ls -l``) its
mode, owner and kind. The masked parts are the line's *slots*.

:func:`classify` groups the lines of one text by template. A template with at least ``MIN_GROUP``
lines is a **group**; every other line is **rare**. Inside a group, a line whose slot holds an
unusual value is rare too: a number far outside the group's spread (beyond ``OUTLIER_IQR`` times
the interquartile range from the quartiles, or different when all the others agree), or a value
that one line alone holds where the group has only a few values. A text of fewer than
``MIN_LINES`` lines, or whose groups hold less than ``REPETITIVE_SHARE`` of its lines (or its
largest less than ``LARGEST_SHARE``), is left alone (code, prose, a short answer): nothing in it is
rare or grouped; lines of only digits, spacing and ``→|:`` (a file read's numbered blank lines)
count as blank. A text is first judged on
an even sample of ``SAMPLE_LINES`` lines: unless ``SAMPLE_SHARE`` of them start like another
(their first characters, digits folded), it is left alone, so that a file read costs a glance.

:func:`collapse` writes a text with each group as one line where its first line was,
``×108 like: 2026-11-03T10:… INFO worker-{1..8} batch={1..108} latency={3..48}ms status=ok``
(a slot shows its one value, the range of its numbers, a set of up to ``MAX_SET`` values, or the
prefix they share), and every other line verbatim, in order. Its output collapses to itself.
JSON arrays of records are read as one ``key=value`` line per record (:func:`records_as_lines`),
where a field whose values are mostly distinct (names, ids) is a slot and a field of few values
(status, level, region) part of the template, so the record that differs stands out.
:func:`standouts` gives the rare lines alone (what stands in for cleared tool output keeps them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

__all__ = [
    "GROUP_MARK",
    "MIN_GROUP",
    "MIN_LINES",
    "Group",
    "Templates",
    "classify",
    "collapse",
    "is_group_line",
    "records_as_lines",
    "standouts",
    "template",
]

MIN_GROUP = 4  # lines of one template that make a group
MIN_LINES = 12  # shorter texts are left alone
SAMPLE_LINES = 48  # a text is first judged on an even sample of this many lines: …
SAMPLE_SHARE = 0.4  # … unless this share of them repeats the start of another, it is left alone
SAMPLE_PREFIX = 16
SAMPLE_HEAD = 256  # characters of a sampled line judged
SAMPLE_DOMINANT = 0.6  # of the share asked of the largest group, what its template must hold in the sample
REPETITIVE_SHARE = 0.5  # of a text's lines in groups, for it to be collapsed …
LARGEST_SHARE = 0.2  # … and in its largest group (code's many small groups of "end" or "}" are not that)
OUTLIER_IQR = 3.0
RARE_VALUE_GROUP = 8  # a value one line alone holds is unusual in a group of at least this many …
RARE_VALUE_KINDS = 4  # … whose slot holds at most this many distinct values
MAX_SET = 3
MAX_SLOT_CHARS = 40
MAX_STANDOUTS = 8  # rare lines :func:`standouts` returns at most …
MAX_STANDOUT_CHARS = 2000  # … holding at most this many characters
STANDOUTS_MEMO = 256
GROUP_MARK = "×"
_GROUP_LINE = re.compile(r"×\d+ like: ")
_SHOWN_HOLE = "*"

# Variable parts, in order of precedence. A file name keeps its extension (group "ext").
_QUOTED = r"\"[^\"\n]{0,200}\"|(?<![\w'])'[^'\n]{0,200}'(?![\w'])"
_UUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
_TIME = r"\d\d:\d\d(?::\d\d(?:[.,]\d+)?)?"
_STAMP = rf"\d{{4}}-\d\d-\d\d(?:[T ]{_TIME}(?:Z|[+-]\d\d:?\d\d)?)?|{_TIME}\b"
_PART = r"[\w@+%-]++(?:\.[\w@+%-]++)*+"
_PATH = rf"(?:~|\.{{1,2}})?(?:/{_PART})++/?|{_PART}(?:/{_PART})++/?"
_FILE = r"[\w-]++(?:\.[\w-]++)++"
_WORD = r"[^\W\d]*+\d(?:[\w.]*\w)?"
# Possessive quantifiers: a word is scanned once, never again by a shorter match.
_VARIABLE = re.compile(rf"(?<!\w)(?:{_QUOTED}|{_UUID}|{_STAMP}|(?P<file>{_PATH}|{_FILE})|{_WORD})")
_EXT = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,7}$")
_SPACES = re.compile(r"\s+")
_HOLE = "\x00"  # a slot in a template's key (no line of text holds it)
# A test runner's pass line is its marker (what passed is not what is needed later); so is a long
# listing's line its mode, owner and group (a symbolic link keeps its target).
_MARKER = re.compile(
    r"(?P<m>[✓✔√](?=\s)|--- PASS:|=== (?:RUN|PAUSE|CONT)(?=\s)|ok(?=\s+\S+\s)|PASS(?=\s+\S))"
    r"|(?P<ls>[-dlcbps][-rwxsStT]{9}[.@+]?\s+\d+\s+\S+\s+\S+)\s+(?!.* -> )"
)
_MARKER_FIRST = frozenset("✓✔√-=oPdlcbps")  # what a line matched by _MARKER starts with
_PYTEST = re.compile(r"\s(PASSED|SKIPPED|XFAIL|XPASS)(?:\s+\[\s*\d+%\])?$")
_PYTEST_END = ("PASSED", "SKIPPED", "XFAIL", "XPASS", "%]")
_NO_CONTENT = " \t\r0123456789→|:"  # a line of only these (a numbered blank line of a file read) is blank
_FOLD_DIGITS = str.maketrans("123456789", "000000000", " \t")  # and spacing left out
_NUMBER = re.compile(r"([-+]?\d+(?:\.\d+)?)([A-Za-z%]*)")


@dataclass(frozen=True, slots=True)
class Template:
    key: str  # the line with its slots masked, spacing collapsed
    slots: tuple[str, ...]  # the masked values, in order
    marker: bool = False  # a pass line or a listing's line: its first line stands for the group


def _marker(stripped: str) -> str | None:
    """The template of a test runner's pass line or a long listing's line, else ``None``."""
    if stripped[:1] in _MARKER_FIRST:
        m = _MARKER.match(stripped)
        if m is not None:
            if m.group("m") is not None:
                return m.group("m").replace("✔", "✓").replace("√", "✓").replace("PAUSE", "RUN").replace("CONT", "RUN")
            return _SPACES.sub(" ", re.sub(r"\s+\d+\s+", " ", m.group("ls"), count=1)) + f" {_HOLE}"
    if stripped.endswith(_PYTEST_END):
        m = _PYTEST.search(stripped)
        if m is not None:
            return f"{_HOLE} {m.group(1)}"
    return None


def template(line: str) -> Template:
    """The line's template: its variable parts masked (see the module docstring)."""
    stripped = line.strip()
    marker = _marker(stripped)
    if marker is not None:
        return Template(marker if _HOLE in marker else f"{marker} {_HOLE}", (stripped,), marker=True)
    slots: list[str] = []

    def hole(found: re.Match[str]) -> str:
        value = found.group(0)
        if found.lastgroup == "file":
            ext = _EXT.search(value)
            if ext is not None and ext.start() > 0:
                slots.append(value[: ext.start()])
                return _HOLE + ext.group(0)
        slots.append(value)
        return _HOLE

    key = " ".join(_VARIABLE.sub(hole, stripped).split())
    return Template(key, tuple(slots))


@dataclass(frozen=True, slots=True)
class Group:
    """Lines of one template: where they are, and how they render as one line."""

    key: str
    lines: tuple[int, ...]  # positions in the text, in order
    render: str  # "×N like: …"


@dataclass(frozen=True, slots=True)
class Templates:
    """The lines of a text by template: each line's group (``-1``: none), which are rare, the groups."""

    group_of: tuple[int, ...]
    rare: tuple[bool, ...]
    groups: tuple[Group, ...]

    @property
    def repetitive(self) -> bool:
        return bool(self.groups)


def _number(value: str) -> tuple[float, str] | None:
    m = _NUMBER.fullmatch(value)
    return (float(m.group(1)), m.group(2)) if m is not None else None


def _quartiles(values: Sequence[float]) -> tuple[float, float]:
    ordered = sorted(values)
    n = len(ordered)
    return ordered[n // 4], ordered[(3 * n) // 4]


def _unusual(slot_values: Sequence[str]) -> set[int]:
    """The positions (in the group) of the values that stand out in one slot."""
    n = len(slot_values)
    out: set[int] = set()
    first = _number(slot_values[0])
    numbers = [_number(v) for v in slot_values] if first is not None else []
    if first is not None and all(x is not None for x in numbers):
        nums = [x[0] for x in numbers if x is not None]
        q1, q3 = _quartiles(nums)
        spread = q3 - q1
        if spread > 0:
            low, high = q1 - OUTLIER_IQR * spread, q3 + OUTLIER_IQR * spread
            out.update(i for i, x in enumerate(nums) if x < low or x > high)
        else:
            out.update(i for i, x in enumerate(nums) if x != q1)
        return out if len(out) * 4 < n else set()
    if n >= RARE_VALUE_GROUP:
        counts: dict[str, int] = {}
        for v in slot_values:
            counts[v] = counts.get(v, 0) + 1
        if len(counts) <= RARE_VALUE_KINDS:
            out.update(i for i, v in enumerate(slot_values) if counts[v] == 1)
    return out


def _slot(values: Sequence[str]) -> str:
    """How one slot of a group reads: its one value, its numbers' range, a few values, or their prefix."""
    distinct = list(dict.fromkeys(values))
    if len(distinct) == 1:
        return distinct[0]
    numbers = [_number(v) for v in distinct]
    if all(x is not None for x in numbers) and len({x[1] for x in numbers if x is not None}) == 1:
        low = min(range(len(distinct)), key=lambda i: numbers[i][0])  # type: ignore[index]
        high = max(range(len(distinct)), key=lambda i: numbers[i][0])  # type: ignore[index]
        unit = numbers[0][1]  # type: ignore[index]
        lo, hi = (distinct[i][: len(distinct[i]) - len(unit)] for i in (low, high))
        return f"{{{lo}..{hi}}}{unit}"
    if len(distinct) <= MAX_SET and sum(len(v) for v in distinct) <= MAX_SLOT_CHARS:
        return "{" + ",".join(distinct) + "}"
    least, most = min(distinct), max(distinct)  # the prefix all share is theirs
    end = next((i for i, (a, b) in enumerate(zip(least, most, strict=False)) if a != b), len(least))
    prefix = least[:end]
    return f"{prefix[:MAX_SLOT_CHARS]}…" if len(prefix) >= 2 else _SHOWN_HOLE


def _render(key: str, members: Sequence[Template]) -> str:
    pieces = key.split(_HOLE)
    if members[0].marker or len(pieces) - 1 != len(members[0].slots):
        return f"{GROUP_MARK}{len(members)} like: {members[0].slots[0] if members[0].marker else key}"
    out = [pieces[0]]
    for i, piece in enumerate(pieces[1:]):
        out.append(_slot([t.slots[i] for t in members]))
        out.append(piece)
    return f"{GROUP_MARK}{len(members)} like: {''.join(out)}"


def is_group_line(line: str) -> bool:
    """Whether ``line`` is a group's line as :func:`collapse` writes it."""
    return _GROUP_LINE.match(line.strip()) is not None


def _may_repeat(lines: Sequence[str], dominant: float) -> bool:
    """Whether the lines may share templates, judged cheaply (in C) on the lines with content of
    an even sample of at most ``SAMPLE_LINES``: at least ``SAMPLE_SHARE`` of them share their
    first ``SAMPLE_PREFIX`` characters (digits folded, spacing left out: indentation is no
    template) with another line of the sample, and then their template; and one template holds
    ``SAMPLE_DOMINANT`` of the ``dominant`` share asked of the largest group. Most text (code,
    prose) does not."""
    step = max(1.0, len(lines) / SAMPLE_LINES)
    evenly = (lines[int(j * step)] for j in range(min(SAMPLE_LINES, len(lines))))
    picked = [line for line in evenly if line.strip(_NO_CONTENT)]
    if not picked:
        return False
    seen: dict[str, int] = {}
    for line in picked:  # (a line's head only: folding a long line whole costs more than all the rest)
        key = "".join(line[:SAMPLE_HEAD].split(maxsplit=SAMPLE_PREFIX))[:SAMPLE_PREFIX].translate(_FOLD_DIGITS)
        seen[key] = seen.get(key, 0) + 1
    if sum(c for c in seen.values() if c > 1) < SAMPLE_SHARE * len(picked):
        return False
    seen = {}  # then by their templates
    for line in picked:
        key = template(line[:SAMPLE_HEAD]).key
        seen[key] = seen.get(key, 0) + 1
    repeated = sum(c for c in seen.values() if c > 1) >= SAMPLE_SHARE * len(picked)
    return repeated and max(seen.values()) >= SAMPLE_DOMINANT * dominant * len(picked)


def classify(lines: Sequence[str], dominant: float = LARGEST_SHARE) -> Templates:
    """The lines by template: groups of at least ``MIN_GROUP`` lines, the rest rare; nothing when
    the text has fewer than ``MIN_LINES`` lines, its groups hold less than ``REPETITIVE_SHARE`` or
    its largest less than ``dominant`` (at least ``LARGEST_SHARE``) of them."""
    none = Templates((-1,) * len(lines), (False,) * len(lines), ())
    dominant = max(dominant, LARGEST_SHARE)
    if len(lines) < MIN_LINES or not _may_repeat(lines, dominant):
        return none
    live = [i for i, line in enumerate(lines) if line.strip(_NO_CONTENT)]
    if len(live) < MIN_LINES:
        return none
    found = {i: template(lines[i]) for i in live}
    by_key: dict[str, list[int]] = {}
    for i in live:
        by_key.setdefault(found[i].key, []).append(i)
    if max(len(v) for v in by_key.values()) < dominant * len(live):
        return none
    members: dict[str, list[int]] = {}
    for key, where in by_key.items():
        if len(where) < MIN_GROUP or is_group_line(lines[where[0]]):
            continue
        width = len(found[where[0]].slots)
        odd: set[int] = set()
        if all(len(found[i].slots) == width for i in where):
            for s in range(width):
                odd |= {where[j] for j in _unusual([found[i].slots[s] for i in where])}
        kept = [i for i in where if i not in odd]
        if len(kept) >= MIN_GROUP:
            members[key] = kept
    grouped = sum(len(v) for v in members.values())
    largest = max((len(v) for v in members.values()), default=0)
    if grouped < REPETITIVE_SHARE * len(live) or largest < dominant * len(live):
        return none
    group_of = [-1] * len(lines)
    groups: list[Group] = []
    for key, where in sorted(members.items(), key=lambda kv: kv[1][0]):
        for i in where:
            group_of[i] = len(groups)
        groups.append(Group(key, tuple(where), _render(key, [found[i] for i in where])))
    rare = tuple(group_of[i] < 0 and bool(lines[i].strip()) for i in range(len(lines)))
    return Templates(tuple(group_of), rare, tuple(groups))


def collapse(text: str) -> str:
    """``text`` with each group as one line where its first line was, the other lines verbatim
    and in order (blank lines between collapsed ones squeezed); ``text`` itself when nothing
    collapses or it holds a group's line already. A JSON array of records is read as
    :func:`records_as_lines` first."""
    lines = records_as_lines(text)
    if lines is None:
        lines = text.split("\n")
    if any(is_group_line(line) for line in lines):  # collapsed before
        return text
    found = classify(lines)
    if not found.groups:
        return text
    out: list[str] = []
    for i, line in enumerate(lines):
        g = found.group_of[i]
        if g >= 0:
            if found.groups[g].lines[0] == i:
                out.append(found.groups[g].render)
        elif line.strip() or (out and out[-1].strip()):
            out.append(line)
    return "\n".join(out)


def standouts(text: str) -> list[str]:
    """The rare lines of a repetitive ``text`` (none for any other), in order: at most
    ``MAX_STANDOUTS`` of them and ``MAX_STANDOUT_CHARS`` characters (what stands in for cleared
    output keeps them). Remembered for the last ``STANDOUTS_MEMO`` texts: clearing tries several
    sets of parts to clear, and the next turn clears the same old output again."""
    return list(_standouts(text))


@lru_cache(maxsize=STANDOUTS_MEMO)
def _standouts(text: str) -> tuple[str, ...]:
    lines = records_as_lines(text)
    if lines is None:
        lines = text.split("\n")
    found = classify(lines)
    out: list[str] = []
    used = 0
    for line, rare in zip(lines, found.rare, strict=True):
        if rare:
            used += len(line) + 1
            if len(out) >= MAX_STANDOUTS or used > MAX_STANDOUT_CHARS:
                break
            out.append(line.strip())
    return tuple(out)


def _json_scalar(value: object) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def records_as_lines(text: str) -> list[str] | None:
    """A JSON array of at least ``MIN_LINES`` objects as one ``key=value`` line per record, its
    mostly-distinct string fields quoted (so that they are slots); ``None`` for anything else."""
    stripped = text.strip()
    if not stripped.startswith("[") or not stripped.endswith("]"):
        return None
    try:
        value = json.loads(stripped)
    except (ValueError, RecursionError):
        return None
    if not isinstance(value, list) or len(value) < MIN_LINES or not all(isinstance(v, dict) for v in value):
        return None
    kinds: dict[str, set[str]] = {}
    for record in value:
        for k, v in record.items():
            if isinstance(v, str):
                kinds.setdefault(k, set()).add(v)
    varied = {k for k, vs in kinds.items() if len(vs) > RARE_VALUE_KINDS}
    lines = []
    for record in value:
        fields = []
        for k, v in record.items():
            quoted = (k in varied and isinstance(v, str)) or isinstance(v, dict | list)
            fields.append(f"{k}={json.dumps(v) if quoted else _json_scalar(v)}")
        lines.append(" ".join(fields))
    return lines
