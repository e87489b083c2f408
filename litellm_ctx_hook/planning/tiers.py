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
from .atoms import group_atoms
from .edits import clear_parts, cut_middle, leading_user, merge_adjacent, tool_names
from .plan import Regions, clear_targets, is_summary
from .steps import Step
from .verify import contains_message

MIN_CLEARABLE_TOKENS = 40  # a placeholder costs ~15 tokens: clearing less saves nothing

Count = Callable[[Sequence[Message]], int]
CountText = Callable[[str], int]


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
def clear_old(
    messages: list[Message], reg: Regions, savings: int, count: Count, count_text: CountText
) -> tuple[list[Message], int] | None:
    """Clear the fewest oldest clearable parts that free at least ``savings`` tokens, or ``None``
    if clearing everything clearable does not.

    Oldest first, so the choice depends only on the older part of the conversation, which does
    not change as it grows: the same ``savings`` clears the same parts on every later turn.
    """
    targets = [
        t
        for t in clear_targets(messages, reg)
        if t.kind is not PartKind.TOOL_RESULT
        or count_text(messages[t.message].parts[t.part].text) >= MIN_CLEARABLE_TOKENS
    ]
    if not targets:
        return None
    names = tool_names(messages)

    def cleared(k: int) -> list[Message]:
        chosen: dict[int, set[int]] = {}
        for t in targets[:k]:
            chosen.setdefault(t.message, set()).add(t.part)
        out = list(messages)
        for i, parts in chosen.items():
            out[i] = clear_parts(messages[i], parts, lambda p: count_text(p.text), names)
        return [m for m in out if not _dropped_reasoning(m)]

    goal = count(messages) - savings
    if count(cleared(len(targets))) > goal:
        return None  # clearing alone cannot free that much: condense the raw span instead
    lo, hi = 1, len(targets)  # smallest k that frees enough (counts are cached per message)
    while lo < hi:
        mid = (lo + hi) // 2
        if count(cleared(mid)) <= goal:
            hi = mid
        else:
            lo = mid + 1
    return cleared(lo), lo


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
) -> None:
    """Drop the oldest unpinned atoms down to the target, then cut pinned messages down to the limit."""
    messages = work.messages
    # Drop whole atoms of the current messages, oldest first: never a pinned message (or one a
    # pinned message was merged into) and never a summary.
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
        work.actions.append(f"truncate:{len(dropped)}")

    # Pinned messages alone are too large: cut their middles (never a system prompt).
    for _ in range(2 * len(work.messages) + 1):
        count = measure(work.messages)
        excess = count.total - limit
        if excess <= 0:
            return
        order = sorted(
            (i for i, m in enumerate(work.messages) if m.role is not Role.SYSTEM), key=lambda i: -count.messages[i]
        )
        done = _first_cut(work.messages, order, excess, count_text)
        if done is None:
            return
        i, cut = done
        before = work.messages[i]
        work.messages[i] = cut
        work.cut.update(j for j in work.pinned if contains_message(before, original[j]))
        work.actions.append("cut:1")


def _first_cut(
    messages: Sequence[Message], order: Sequence[int], excess: int, count_text: CountText
) -> tuple[int, Message] | None:
    """The largest message (in ``order``) that can lose all of the excess, cut; if none can, the
    largest that can be cut at all, cut down to its head and tail."""
    for partial in (False, True):
        for i in order:
            cut = cut_middle(messages[i], excess, count_text, partial=partial)
            if cut is not None:
                return i, cut
    return None


SUMMARY_ACTIONS = frozenset({"reuse", "condense", "extend"})


def strategy_of(actions: Sequence[str]) -> ContextManagementStrategy:
    """The strategy a result's actions amount to (the most drastic of them)."""
    kinds = {a.split(":", 1)[0] for a in actions}
    if kinds & {"truncate", "cut"}:
        return ContextManagementStrategy.EMERGENCY_TRUNCATION
    if any(a.startswith(("condense:aggressive", "extend:aggressive")) for a in actions):
        return ContextManagementStrategy.CONDENSATION_AGGRESSIVE
    if kinds & {"clear", "condense", "extend", "reuse"}:
        return ContextManagementStrategy.CONDENSATION_LIGHT
    return ContextManagementStrategy.MONITOR_ONLY
