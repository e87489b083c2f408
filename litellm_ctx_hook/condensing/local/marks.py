"""What a unit's template earns in the extractive condenser (pure): tool output read by template.

In a tool result whose units mostly share one template (:mod:`analysis.templates`: a log, a test
run, a listing, JSON records), a unit of a rare template earns ``RARE_BONUS`` and those of a
repetitive one count ``COMMON_FACTOR`` as much, and each group gets a line of its own
(``GROUP_BONUS``). The lines that stand in for cleared output are rare, its index of facts common;
in the summary of earlier turns being condensed again, a tool result's line whose template no
other line of it has is rare, its index line common.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ...analysis.fact_index import INDEX_LABEL
from ...analysis.templates import Templates, classify, is_group_line, template
from ...planning.edits import STANDOUTS_HEADER
from .cutting import GAP

RARE_BONUS = 10.0  # a rare line of repetitive tool output (the failure, the warning, the note) ranks first
GROUP_BONUS = 1.0  # a group's line "×108 like: …" (:mod:`templates`)
COMMON_FACTOR = 0.25  # a line of a repetitive template
MARK_MIN_LINES = 80  # units of a tool result for its templates to count …
MARK_LARGEST_SHARE = 0.5  # … when one template holds this share of them
STANDOUTS_MIN_UNITS = 3  # cleared output's placeholder, its header and a standout
SUMMARY_SPEAKER = "summary of earlier turns"
_LABEL = re.compile(r"\[([^\]\n]{1,80})\] ")


def template_marks(
    speaker: str, cut: Sequence[tuple[str, str | None]]
) -> tuple[list[float], list[float], dict[int, str]] | None:
    """Per unit of one segment: the bonus its template earns (``RARE_BONUS`` for a rare line of
    repetitive tool output), its factor (``COMMON_FACTOR`` for a line of a repetitive template), and
    the groups' lines to put before their first units (:mod:`templates`); ``None`` when they earn
    nothing (most segments: code, prose, short output). The lines that stand in
    for cleared output (its standouts, :func:`edits.placeholder`) are rare; so are, in the summary of
    earlier turns, the lines of a tool result whose template no other line of it has (they were
    kept as rare); its index line counts as a common one (the new index takes its facts)."""
    texts = [text for text, _ in cut]
    n = len(texts)
    bonuses, factors = [0.0] * n, [1.0] * n
    groups: dict[int, str] = {}
    if speaker.startswith("tool result"):
        if STANDOUTS_HEADER in texts:  # cleared output's standouts (then perhaps its index of facts)
            for k in range(texts.index(STANDOUTS_HEADER) + 1, n):
                if texts[k].startswith(INDEX_LABEL):
                    factors[k] = COMMON_FACTOR  # its facts go to the new index unless lines quote them
                else:
                    bonuses[k] = RARE_BONUS
            return bonuses, factors, groups
        if n < MARK_MIN_LINES or not _dominated(found := classify(texts, MARK_LARGEST_SHARE), n):
            return None
        for k in range(n):
            if found.rare[k]:
                bonuses[k] = RARE_BONUS
            elif found.group_of[k] >= 0:
                factors[k] = COMMON_FACTOR
        for group in found.groups:
            groups[group.lines[0]] = group.render
        return bonuses, factors, groups
    if speaker != SUMMARY_SPEAKER:
        return None
    for k, text in enumerate(texts):
        if text.startswith(INDEX_LABEL):  # its facts go to the new index unless lines quote them
            factors[k] = COMMON_FACTOR
    for start, end in _tool_blocks(texts):
        lines = [_unlabelled(texts[k]) for k in range(start, end)]
        keys = [template(line).key for line in lines]
        for k, line, key in zip(range(start, end), lines, keys, strict=True):
            if is_group_line(line):
                bonuses[k], factors[k] = GROUP_BONUS, COMMON_FACTOR
            elif line != GAP and keys.count(key) == 1:
                bonuses[k] = RARE_BONUS
    return bonuses, factors, groups


def _dominated(found: Templates, n: int) -> bool:
    """Whether one template holds at least ``MARK_LARGEST_SHARE`` of a tool result's units (a
    log, a test run, a listing), not merely several small groups."""
    return any(len(g.lines) >= MARK_LARGEST_SHARE * n for g in found.groups)


def may_mark(speaker: str, n: int) -> bool:
    """Whether a segment's templates may earn anything (:func:`template_marks`)."""
    return speaker == SUMMARY_SPEAKER or (speaker.startswith("tool result") and n >= STANDOUTS_MIN_UNITS)


def _unlabelled(text: str) -> str:
    """A line of an earlier summary without its ``[speaker]`` label, if any."""
    if text.startswith("[") and "] " in text:
        return text.split("] ", 1)[1]
    return text


def _tool_blocks(texts: Sequence[str]) -> list[tuple[int, int]]:
    """The runs of an earlier summary's lines that are a tool result's (from its label to the next label)."""
    out: list[tuple[int, int]] = []
    start = -1
    for k, text in enumerate(texts):
        label = _LABEL.match(text)
        if label is None:
            continue
        if start >= 0:
            out.append((start, k))
        start = k if label.group(1).startswith("tool result") else -1  # the index line ends a block
    if start >= 0:
        out.append((start, len(texts)))
    return out
