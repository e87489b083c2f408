"""Planning (pure): which atoms are pinned, which parts get cleared, which span gets condensed.

The conversation splits into a pinned head (leading system messages and, with
``ENABLE_CONVERSATION_FLOW_PRESERVATION``, the first user message: the task), a pinned tail
(the last ``CONDENSATION_KEEP_RECENT`` atoms, always reaching back to the last user turn, and any
atom with an unanswered tool call) and the middle the engine may change. Atoms are never split.
When the pinned messages alone exceed the limit, condensation and truncation get a shorter tail
(:func:`fitting_regions`); clearing never does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..conversation import Message, PartKind, Role
from ..settings import Settings
from .atoms import Atom, group_atoms
from .edits import SUMMARY_OPEN

# In a plain chat (no tool traffic) the condensed history keeps at most this many recent messages
# verbatim besides the pinned tail: a chat's turns are short, so the token share that holds an
# agent's recent tool results verbatim would hold dozens of turns there, whose facts the
# condenser would otherwise weigh against the rest of the history.
CHAT_RECENT_MESSAGES = 10


@dataclass(frozen=True, slots=True)
class Regions:
    """Message index ranges: ``[0, head_end)`` head, ``[head_end, tail_start)`` middle, rest tail.

    ``islands`` are pinned atoms inside the middle: the last user turn when it is older than the
    tail (an agent may have made many tool calls since the user last spoke) and the summaries of
    earlier management. They stay verbatim and split the middle into runs.
    """

    head_end: int
    tail_start: int
    atoms: tuple[Atom, ...]  # all atoms, in order
    islands: tuple[tuple[int, int], ...] = ()  # [start, end) of pinned atoms inside the middle

    @property
    def middle_atoms(self) -> tuple[Atom, ...]:
        return tuple(
            a
            for a in self.atoms
            if a.start >= self.head_end and a.end <= self.tail_start and not self._in_island(a.start)
        )

    @property
    def runs(self) -> tuple[tuple[Atom, ...], ...]:
        """The middle as maximal runs of adjacent unpinned atoms."""
        runs: list[list[Atom]] = []
        for a in self.middle_atoms:
            if runs and runs[-1][-1].end == a.start:
                runs[-1].append(a)
            else:
                runs.append([a])
        return tuple(tuple(r) for r in runs)

    def _in_island(self, index: int) -> bool:
        return any(start <= index < end for start, end in self.islands)

    def pinned(self, index: int) -> bool:
        return index < self.head_end or index >= self.tail_start or self._in_island(index)


def regions(messages: Sequence[Message], settings: Settings, keep_recent: int | None = None) -> Regions:
    """Split ``messages`` into head, middle and tail on atom boundaries."""
    grouped = group_atoms(messages).atoms
    if not grouped:
        return Regions(0, 0, ())

    def is_user_turn(k: int) -> bool:
        first = messages[grouped[k].start]
        return first.role is Role.USER and not first.has(PartKind.TOOL_RESULT) and not is_summary(first)

    # Head: leading system messages, then the first user message (the task).
    head_atoms = 0
    while head_atoms < len(grouped) and messages[grouped[head_atoms].start].role is Role.SYSTEM:
        head_atoms += 1
    if settings.enable_conversation_flow_preservation:
        for k in range(head_atoms, len(grouped)):
            if is_user_turn(k):
                head_atoms = k + 1
                break
    head_end = grouped[head_atoms - 1].end if head_atoms else 0

    # Tail: the last keep_recent atoms; an atom whose calls are not answered stays, with all after it.
    keep = settings.condensation_keep_recent if keep_recent is None else keep_recent
    first_tail = max(head_atoms, len(grouped) - keep)
    for k in range(head_atoms, first_tail):
        if grouped[k].unanswered:
            first_tail = k
            break
    tail_start = grouped[first_tail].start if first_tail < len(grouped) else len(messages)

    # The last user turn is always kept, even when it is older than the tail; so are summaries.
    islands = [
        (grouped[k].start, grouped[k].end)
        for k in range(head_atoms, first_tail)
        if any(is_summary(messages[i]) for i in grouped[k].indices)
    ]
    last_user = next((k for k in range(len(grouped) - 1, -1, -1) if is_user_turn(k)), None)
    if last_user is not None and head_atoms <= last_user < first_tail:
        islands.append((grouped[last_user].start, grouped[last_user].end))
    return Regions(head_end, tail_start, grouped, tuple(sorted(set(islands))))


def fitting_regions(
    messages: Sequence[Message], settings: Settings, tokens: Sequence[int], room: int, full: Regions | None = None
) -> Regions:
    """:func:`regions`, with a shorter pinned tail when the pinned messages alone exceed ``room``
    (what the request's limit leaves once its system prompt and tools are counted: they could only
    be cut): the fewest recent atoms released from the tail that make them fit, or the newest atom
    alone.

    A tail holding a message larger than the room (an agent's parallel tool results) would
    otherwise be cut in its middle on every turn, by a little more as the conversation grows. With
    the atoms before it released, they are condensed once, and each later atom stays in the tail
    until the default tail has moved past the large one; truncation, if condensing fails, drops
    them before it cuts the newest. A function of the request alone, so every replica chooses the
    same. Clearing keeps to :func:`regions`: it never empties a recent tool result. ``full``:
    :func:`regions` of the same messages, when the caller has it already."""
    keep = settings.condensation_keep_recent
    reg = full if full is not None else regions(messages, settings)
    while keep > 1 and sum(t for i, t in enumerate(tokens) if reg.pinned(i)) > room:
        keep -= 1
        reg = regions(messages, settings, keep)
    return reg


def is_summary(message: Message) -> bool:
    """A summary inserted by earlier management (kept as it is when managing again)."""
    return message.role is Role.USER and any(
        p.kind is PartKind.TEXT and p.text.startswith(SUMMARY_OPEN) for p in message.parts
    )


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
        if reg.pinned(i):
            continue
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
    keep_messages: int | None = None,
) -> tuple[int, int] | None:
    """Everything in the middle except the most recent atoms that fit in ``keep_tokens`` (and,
    when given, in ``keep_messages`` messages).

    ``keep_tokens`` is ``MIN_PRESERVATION_RATIO`` of what the target leaves for the middle: recent
    turns stay verbatim as long as they fit, older ones are condensed.
    """
    end = len(middle)
    kept = messages_kept = 0
    while end > 0 and kept + atom_tokens[end - 1] <= keep_tokens:
        size = middle[end - 1].end - middle[end - 1].start
        if keep_messages is not None and messages_kept + size > keep_messages:
            break
        kept += atom_tokens[end - 1]
        messages_kept += size
        end -= 1
    messages = sum(a.end - a.start for a in middle[:end])
    if end == 0 or messages < settings.condensation_min_messages:
        return None
    return 0, end
