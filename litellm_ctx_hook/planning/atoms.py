"""Atoms: the smallest units the planner may move.

An atom is one message, or a run of assistant messages that make tool calls together with
every following message that answers those calls (OpenAI ``tool`` messages, the Anthropic user
message carrying ``tool_result`` blocks, Responses ``function_call_output`` items). Atoms are
never split. Calls left unanswered and results with no call are reported, not repaired.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..conversation import Message, PartKind, Role


@dataclass(frozen=True, slots=True)
class Atom:
    start: int  # index of the first message
    end: int  # one past the last message
    call_ids: tuple[str, ...] = ()
    unanswered: tuple[str, ...] = ()  # call ids no later message answers (yet)

    @property
    def indices(self) -> range:
        return range(self.start, self.end)

    @property
    def has_tools(self) -> bool:
        return bool(self.call_ids)


@dataclass(frozen=True, slots=True)
class Atoms:
    atoms: tuple[Atom, ...]
    orphan_results: tuple[str, ...]  # tool results whose call is not in the same atom
    unanswered_calls: tuple[str, ...]

    @property
    def pair_count(self) -> int:
        return sum(len(a.call_ids) - len(a.unanswered) for a in self.atoms)


def _is_result_only(message: Message) -> bool:
    return message.role is Role.TOOL or (message.role is Role.USER and message.has(PartKind.TOOL_RESULT))


def group_atoms(messages: Sequence[Message]) -> Atoms:
    """Group ``messages`` into atoms (pure, O(n))."""
    atoms: list[Atom] = []
    orphans: list[str] = []
    unanswered_all: list[str] = []
    i, n = 0, len(messages)
    while i < n:
        msg = messages[i]
        if msg.role is Role.ASSISTANT:
            # A run of assistant messages/items: Responses puts reasoning, text and each
            # function_call in separate items that belong together.
            j = i
            calls: list[str] = []
            while j < n and messages[j].role is Role.ASSISTANT:
                calls.extend(messages[j].tool_call_ids)
                j += 1
            if not calls:
                # plain assistant text turns are their own atoms
                for k in range(i, j):
                    atoms.append(Atom(k, k + 1))
                i = j
                continue
            pending = set(calls)
            while j < n and pending and _is_result_only(messages[j]):
                for rid in messages[j].tool_result_ids:
                    if rid in pending:
                        pending.discard(rid)
                    else:
                        orphans.append(rid)
                j += 1
            left = tuple(c for c in calls if c in pending)
            unanswered_all.extend(left)
            atoms.append(Atom(i, j, tuple(calls), left))
            i = j
            continue
        orphans.extend(msg.tool_result_ids)
        atoms.append(Atom(i, i + 1))
        i += 1
    return Atoms(tuple(atoms), tuple(orphans), tuple(unanswered_all))
