"""Tier 1 and tier 3 of management: clearing old output, and truncation (pure, given counters).

Tier 2 (condensation) lives in :mod:`condensation`; the engine runs the tiers cheapest first and
verifies each result. ``count`` counts a request made of the given messages; ``count_text``
counts plain text for the target model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..analysis.counting import RequestCount
from ..analysis.risk import ContextManagementStrategy
from ..conversation import Format, Message, PartKind, Role
from . import actions
from .atoms import group_atoms
from .edits import clear_parts, cut_middle, leading_user, merge_adjacent, shorten_summary, tool_names
from .plan import ClearTarget, Regions, clear_targets, is_summary
from .steps import Step
from .verify import contains_message

MIN_CLEARABLE_TOKENS = 40  # a placeholder costs ~15 tokens: clearing less saves nothing

Count = Callable[[Sequence[Message]], int]
CountText = Callable[[str], int]
Condense = Callable[[str, int], str]  # (summary, budget) → the summary condensed into the budget


@dataclass
class Work:
    """Mutable scratch state of one management run."""

    messages: list[Message]
    pinned: list[int]  # indices into the *original* messages
    actions: list[str] = field(default_factory=list)
    cut: set[int] = field(default_factory=set)
    cache: str = "none"
    summary: dict[str, Any] | None = None
    counted: tuple[tuple[Message, ...], RequestCount] | None = None  # messages last counted, and their count
    step: Step | None = None  # a prefix the following turns may send again (steps.keeps); None: a new one


# -- tier 1 ----------------------------------------------------------------------------------
def _clearable(messages: list[Message], reg: Regions, count_text: CountText) -> list[ClearTarget]:
    return [
        t
        for t in clear_targets(messages, reg)
        if t.kind is not PartKind.TOOL_RESULT
        or count_text(messages[t.message].parts[t.part].text) >= MIN_CLEARABLE_TOKENS
    ]


def _cleared(
    messages: list[Message],
    targets: Sequence[ClearTarget],
    count_text: CountText,
    names: dict[str, str],
    *,
    indexed: bool = True,
) -> list[Message]:
    chosen: dict[int, set[int]] = {}
    for t in targets:
        chosen.setdefault(t.message, set()).add(t.part)
    out = list(messages)
    for i, parts in chosen.items():
        out[i] = clear_parts(messages[i], parts, lambda p: count_text(p.text), names, indexed=indexed)
    return [m for m in out if not _dropped_reasoning(m)]


def clear_old(
    messages: list[Message], reg: Regions, savings: int, count: Count, count_text: CountText
) -> tuple[list[Message], int] | None:
    """Clear the fewest oldest clearable parts that free at least ``savings`` tokens, or ``None``
    if clearing everything clearable does not.

    Oldest first, so the choice depends only on the older part of the conversation, which does
    not change as it grows: the same ``savings`` clears the same parts on every later turn.
    """
    targets = _clearable(messages, reg, count_text)
    if not targets:
        return None
    names = tool_names(messages)
    goal = count(messages) - savings
    if count(_cleared(messages, targets, count_text, names, indexed=False)) > goal:
        return None  # clearing alone cannot free that much, even without indexes: condense instead
    lo, hi = 1, len(targets)  # smallest k that frees enough (counts are cached per message)
    while lo < hi:
        mid = (lo + hi) // 2
        if count(_cleared(messages, targets[:mid], count_text, names)) <= goal:
            hi = mid
        else:
            lo = mid + 1
    cleared = _cleared(messages, targets[:lo], count_text, names)
    return (cleared, lo) if count(cleared) <= goal else None


def clear_all(messages: list[Message], reg: Regions, count_text: CountText) -> tuple[list[Message], int] | None:
    """Every clearable part outside the pinned messages cleared (``None``: there is none)."""
    targets = _clearable(messages, reg, count_text)
    return (_cleared(messages, targets, count_text, tool_names(messages)), len(targets)) if targets else None


def _dropped_reasoning(message: Message) -> bool:
    """A Responses reasoning item whose thinking was cleared is removed altogether."""
    return (
        message.edited
        and message.raw is not None
        and message.raw.get("type") == "reasoning"
        and all(p.kind is PartKind.TEXT for p in message.parts)
    )


# -- tier 3 ----------------------------------------------------------------------------------
def truncate(
    fmt: Format,
    original: Sequence[Message],
    work: Work,
    target_tokens: int,
    limit: int,
    measure: Callable[[Sequence[Message]], RequestCount],
    count_text: CountText,
    condense: Condense,
) -> None:
    """Drop the oldest unpinned atoms down to the target, then cut pinned messages down to the limit."""
    drop_old(fmt, original, work, target_tokens, measure)
    cut_pinned(original, work, limit, measure, count_text, condense)


def drop_old(
    fmt: Format,
    original: Sequence[Message],
    work: Work,
    target_tokens: int,
    measure: Callable[[Sequence[Message]], RequestCount],
) -> None:
    """Drop whole atoms of the current messages, oldest first, down to the target: never a pinned
    message (or one a pinned message was merged into) and never a summary."""
    messages = work.messages
    pinned_objs = {id(original[i]) for i in work.pinned}
    pinned_parts = [original[i] for i in work.pinned]

    def keep(m: Message) -> bool:
        if id(m) in pinned_objs or is_summary(m):
            return True
        return m.edited and any(contains_message(m, p) for p in pinned_parts)

    per = measure(messages)
    total = per.total
    dropped: set[int] = set()
    for at in group_atoms(messages).atoms:
        if total <= target_tokens:
            break
        if any(keep(messages[i]) for i in at.indices):
            continue
        dropped.update(at.indices)
        total -= sum(per.messages[i] for i in at.indices)
    if dropped:
        kept = [m for i, m in enumerate(messages) if i not in dropped]
        if fmt is Format.ANTHROPIC:
            kept = leading_user(fmt, merge_adjacent(kept), len(dropped))
        work.messages = kept
        work.actions.append(actions.truncate(len(dropped)))


def cut_pinned(
    original: Sequence[Message],
    work: Work,
    limit: int,
    measure: Callable[[Sequence[Message]], RequestCount],
    count_text: CountText,
    condense: Condense,
) -> None:
    """Pinned messages alone are too large: cut their middles down to the limit (never a system
    prompt). The largest message that can lose the whole excess goes first (it loses the smallest
    share of itself), the oldest of equals first; when none can, the largest lose what they can.
    A summary gives way after the other messages, condensed again (``condense(summary, budget)``)
    before it is cut: it is already the dense remainder of many. The newest turn (the original's
    last atom) is cut last, when nothing else is left to cut, unless it alone is larger than the
    room the system prompt and tools leave: then it is cut first, since it cannot be sent whole
    anyway."""
    newest = {id(original[i]) for i in newest_turn(original)}

    def middle(message: Message, excess: int, partial: bool) -> tuple[Message, str] | None:
        cut = cut_middle(message, excess, count_text, partial=partial)
        return (cut, actions.CUT) if cut is not None else None

    def summary(message: Message, excess: int, partial: bool) -> tuple[Message, str] | None:
        shorter = shorten_summary(message, excess, count_text, condense, partial=partial)
        return (shorter, actions.SHORTEN) if shorter is not None else middle(message, excess, partial)

    for _ in range(2 * len(work.messages) + 1):
        count = measure(work.messages)
        excess = count.total - limit
        if excess <= 0:
            return
        room = limit - (count.total - sum(count.messages))
        cuttable = [i for i, m in enumerate(work.messages) if m.role is not Role.SYSTEM]
        last = [i for i in cuttable if id(work.messages[i]) in newest]
        if sum(count.messages[i] for i in last) > room:
            first, last = last, []
        else:
            first = []
        rest = [i for i in cuttable if i not in last and i not in first]
        summaries = [i for i in rest if is_summary(work.messages[i])]
        rest = [i for i in rest if i not in summaries]
        groups = ((first, middle), (rest, middle), (summaries, summary), (last, middle))
        done = _first_cut(work.messages, groups, count.messages, excess)
        if done is None:
            return
        i, (cut, action) = done
        before = work.messages[i]
        work.messages[i] = cut
        if action == actions.CUT:
            work.cut.update(j for j in work.pinned if contains_message(before, original[j]))
        work.actions.append(action)


def newest_turn(messages: Sequence[Message]) -> list[int]:
    """The indices of the newest turn: the conversation's last atom, and the last atom holding
    tool results when a message came after it (the output the agent has just read)."""
    atoms = group_atoms(messages).atoms
    if not atoms:
        return []
    out = set(atoms[-1].indices)
    with_results = next((at for at in reversed(atoms) if at.has_tools), None)
    if with_results is not None:
        out.update(with_results.indices)
    return sorted(out)


# (message, excess, partial) → it shorter, and the action that says how
Shorten = Callable[[Message, int, bool], tuple[Message, str] | None]


def _first_cut(
    messages: Sequence[Message],
    groups: Sequence[tuple[Sequence[int], Shorten]],
    tokens: Sequence[int],
    excess: int,
) -> tuple[int, tuple[Message, str]] | None:
    """The message to cut next, and it cut: from the first group that has one, the largest that
    can lose all of the excess (the oldest of equals); if none can, the largest that can be cut at
    all, cut down to its head and tail."""
    for group, shorten in groups:
        order = sorted(group, key=lambda i: (-tokens[i], i))
        for partial in (False, True):
            for i in order:
                cut = shorten(messages[i], excess, partial)
                if cut is not None:
                    return i, cut
    return None


def strategy_of(done: Sequence[str]) -> ContextManagementStrategy:
    """The strategy a result's actions amount to (the most drastic of them)."""
    found = actions.kinds(done)
    if found & actions.EMERGENCY:
        return ContextManagementStrategy.EMERGENCY_TRUNCATION
    if any(a.startswith(("condense:aggressive", "extend:aggressive")) for a in done):
        return ContextManagementStrategy.CONDENSATION_AGGRESSIVE
    if found & {"clear", *actions.SUMMARY_ACTIONS}:
        return ContextManagementStrategy.CONDENSATION_LIGHT
    return ContextManagementStrategy.MONITOR_ONLY
