"""Planning (pure): which atoms are pinned, which parts get cleared, which span gets condensed.

The conversation splits into a pinned head (leading system messages and, with
``ENABLE_CONVERSATION_FLOW_PRESERVATION``, the first user message: the task), a pinned tail
(the last ``CONDENSATION_KEEP_RECENT`` atoms, always reaching back to the last user turn, and
any atom with an unanswered tool call) and the middle the engine may change. Atoms are never
split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from .atoms import Atom, group_atoms
from .conversation import Message, PartKind, Role
from .settings import Settings


@dataclass(frozen=True, slots=True)
class Regions:
    """Message index ranges: ``[0, head_end)`` head, ``[head_end, tail_start)`` middle, rest tail."""

    head_end: int
    tail_start: int
    atoms: tuple[Atom, ...]  # all atoms, in order

    @property
    def middle_atoms(self) -> tuple[Atom, ...]:
        return tuple(a for a in self.atoms if a.start >= self.head_end and a.end <= self.tail_start)

    def pinned(self, index: int) -> bool:
        return index < self.head_end or index >= self.tail_start


def regions(messages: Sequence[Message], settings: Settings, keep_recent: int | None = None) -> Regions:
    """Split ``messages`` into head, middle and tail on atom boundaries."""
    grouped = group_atoms(messages).atoms
    if not grouped:
        return Regions(0, 0, ())
    # Head: leading system messages, then the first user message (the task).
    head_atoms = 0
    while head_atoms < len(grouped) and messages[grouped[head_atoms].start].role is Role.SYSTEM:
        head_atoms += 1
    if settings.enable_conversation_flow_preservation:
        for k in range(head_atoms, len(grouped)):
            first = messages[grouped[k].start]
            if first.role is Role.USER and not first.has(PartKind.TOOL_RESULT):
                head_atoms = k + 1
                break
    head_end = grouped[head_atoms - 1].end if head_atoms else 0

    # Tail: the last keep_recent atoms, extended back to the last real user turn.
    keep = settings.condensation_keep_recent if keep_recent is None else keep_recent
    first_tail = max(head_atoms, len(grouped) - keep)
    last_user = next(
        (
            k
            for k in range(len(grouped) - 1, -1, -1)
            if messages[grouped[k].start].role is Role.USER and not messages[grouped[k].start].has(PartKind.TOOL_RESULT)
        ),
        None,
    )
    if last_user is not None and last_user >= head_atoms:
        first_tail = min(first_tail, last_user)
    # An atom whose calls are not answered must stay as it is, and so must everything after it.
    for k in range(head_atoms, first_tail):
        if grouped[k].unanswered:
            first_tail = k
            break
    tail_start = grouped[first_tail].start if first_tail < len(grouped) else len(messages)
    return Regions(head_end, tail_start, grouped)


@dataclass(frozen=True, slots=True)
class ClearTarget:
    """A part in the middle to replace by a placeholder (tool result, thinking, image)."""

    message: int
    part: int
    kind: PartKind


def clear_targets(messages: Sequence[Message], reg: Regions) -> list[ClearTarget]:
    """Clearable parts of the middle, oldest first."""
    out: list[ClearTarget] = []
    for i in range(reg.head_end, reg.tail_start):
        for j, part in enumerate(messages[i].parts):
            if part.kind in (PartKind.TOOL_RESULT, PartKind.THINKING, PartKind.IMAGE):
                out.append(ClearTarget(i, j, part.kind))
    return out


def light_span(
    middle: Sequence[Atom],
    atom_tokens: Sequence[int],
    excess: int,
    summary_tokens: int,
    settings: Settings,
) -> tuple[int, int] | None:
    """The oldest run of middle atoms whose condensation removes ``excess`` tokens.

    Returns ``(first, last_exclusive)`` atom positions within ``middle``, or ``None`` when no span
    of at most ``CONDENSATION_MAX_MESSAGES`` messages is enough (the caller goes aggressive) or
    the span would hold fewer than ``CONDENSATION_MIN_MESSAGES`` messages.
    """
    saved = -summary_tokens
    messages = 0
    for k, atom in enumerate(middle):
        saved += atom_tokens[k]
        messages += atom.end - atom.start
        if messages > settings.condensation_max_messages:
            return None
        if saved >= excess:
            if messages < settings.condensation_min_messages:
                return None
            return 0, k + 1
    return None


def aggressive_span(
    middle: Sequence[Atom],
    atom_tokens: Sequence[int],
    keep_tokens: int,
    settings: Settings,
) -> tuple[int, int] | None:
    """Everything in the middle except the most recent atoms that fit in ``keep_tokens``.

    ``keep_tokens`` is ``MIN_PRESERVATION_RATIO`` of what the target leaves for the middle: recent
    turns stay verbatim as long as they fit, older ones are condensed.
    """
    end = len(middle)
    kept = 0
    while end > 0 and kept + atom_tokens[end - 1] <= keep_tokens:
        kept += atom_tokens[end - 1]
        end -= 1
    messages = sum(a.end - a.start for a in middle[:end])
    if end == 0 or messages < settings.condensation_min_messages:
        return None
    return 0, end
