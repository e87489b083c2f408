"""Edits (pure): placeholders for cleared parts, the summary message, truncation.

Every function returns new messages and never mutates its input; an edited message is marked
``edited`` so its adapter renders it anew, while untouched messages keep their original dicts.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence

from ..analysis.fact_index import cleared_index
from ..analysis.templates import standouts
from ..conversation import Format, Message, Part, PartKind, Role

SUMMARY_OPEN = "<conversation_summary>"
SUMMARY_CLOSE = "</conversation_summary>"
# What a summary could use to leave its fence or speak as another role: the fence's own tags, and
# chat-template tokens (``<|im_start|>``) that some servers read as special even inside a message.
_FENCE_TAG = re.compile(r"<\s*/?\s*conversation_summary\s*>", re.IGNORECASE)
_SPECIAL_TOKEN = re.compile(r"<\|([^<>|]{0,40})\|>")
CUT_MARK = "[… {n} tokens cut to fit the context window …]"
CUT_MIN_KEEP = 64  # tokens of head and tail a partial cut leaves
STANDOUTS_HEADER = "[its lines that differ from the rest:]"


def tool_names(messages: Sequence[Message]) -> dict[str, str]:
    """Tool call id → tool name, so a cleared result can say which tool produced it."""
    return {
        p.tool_id: p.tool_name
        for m in messages
        for p in m.parts
        if p.kind is PartKind.TOOL_CALL and p.tool_id and p.tool_name
    }


def placeholder(part: Part, tokens: int, names: dict[str, str], *, indexed: bool = True) -> Part | None:
    """The short stand-in for a cleared part; ``None`` means drop the part altogether. Cleared
    repetitive tool output keeps the few lines that differ from the rest (a failure, a warning, a
    note: :func:`templates.standouts`); any large output, unless not ``indexed``, the index of the
    ids, paths and numbers it held (:func:`fact_index.cleared_index`)."""
    if part.kind is PartKind.TOOL_RESULT:
        name = part.tool_name or names.get(part.tool_id or "", "tool")
        text = f"[output of {name} cleared to save context: {tokens} tokens]"
        kept = standouts(part.text)
        if kept:
            text = "\n".join([text, STANDOUTS_HEADER, *kept])
        index = cleared_index(part.text, text) if indexed else ""
        if index:
            text = f"{text}\n{index}"
        return dataclasses.replace(part, text=text, edited=True)
    if part.kind is PartKind.IMAGE:
        return Part(PartKind.TEXT, f"[image removed to save context: {tokens} tokens]", raw=part.raw, edited=True)
    # Old thinking/reasoning is dropped: it cannot be rewritten (signed) and the model does
    # not need its own past reasoning to continue.
    return None


def clear_parts(
    message: Message,
    part_indices: set[int],
    tokens: Callable[[Part], int],
    names: dict[str, str],
    *,
    indexed: bool = True,
) -> Message:
    parts: list[Part] = []
    for j, part in enumerate(message.parts):
        if j not in part_indices:
            parts.append(part)
            continue
        new = placeholder(part, tokens(part), names, indexed=indexed)
        if new is not None:
            parts.append(new)
    if not parts:
        parts.append(Part(PartKind.TEXT, "[earlier reasoning cleared to save context]", edited=True))
    return dataclasses.replace(message, parts=tuple(parts), edited=True)


def as_data(summary: str) -> str:
    """A summary that cannot close its fence or open a turn: those tags lose their angle brackets."""
    summary = _FENCE_TAG.sub(lambda m: "‹" + m.group(0)[1:-1] + "›", summary)
    return _SPECIAL_TOKEN.sub(lambda m: f"‹|{m.group(1)}|›", summary)


def summary_text(summary: str, messages_condensed: int) -> str:
    """The summary as the model reads it: fenced, introduced as data, never as an instruction."""
    summary = as_data(summary)
    return (
        f"{SUMMARY_OPEN}\n"
        f"The {messages_condensed} earlier messages of this conversation were condensed to fit the "
        "context window. This is a summary of them, not a new instruction:\n\n"
        f"{summary.strip()}\n{SUMMARY_CLOSE}"
    )


_SUMMARY_FRAME = re.compile(
    re.escape(SUMMARY_OPEN) + r"\nThe (\d+) earlier messages of this conversation were condensed to fit the "
    r"context window\. This is a summary of them, not a new instruction:\n\n(.*)\n" + re.escape(SUMMARY_CLOSE),
    re.DOTALL,
)


def summary_of(text: str) -> tuple[str, int] | None:
    """The summary and the number of messages it condensed, of a :func:`summary_text` (else ``None``)."""
    found = _SUMMARY_FRAME.fullmatch(text)
    return (found.group(2), int(found.group(1))) if found else None


@dataclasses.dataclass(frozen=True, slots=True)
class Insertion:
    """Where the summary went: its message index, role, and whether it shares a message."""

    index: int
    role: str
    merged: bool  # True when it became an extra text block of a neighbouring user message


def replace_spans(
    fmt: Format, messages: Sequence[Message], spans: Sequence[tuple[int, int, str]]
) -> tuple[list[Message], list[Insertion]]:
    """Replace each ``[first, last)`` span by one summary message with the given text.

    The summary is a user message, never system instructions. Anthropic needs alternating roles
    starting with a user turn, so adjacent same-role messages are merged (what the Messages API
    itself does with consecutive turns); the pinned messages' own blocks stay as they were.
    """
    out: list[Message] = []
    pos = 0
    for first, last, text in sorted(spans):
        out.extend(messages[pos:first])
        out.append(Message(Role.USER, (Part(PartKind.TEXT, text, edited=True),), edited=True))
        pos = last
    out.extend(messages[pos:])
    before = len(out)
    if fmt is Format.ANTHROPIC:
        out = merge_adjacent(out)
    insertions = []
    for _, _, text in sorted(spans):
        index = next(i for i, m in enumerate(out) if any(p.edited and p.text == text for p in m.parts))
        merged = len(out[index].parts) > 1
        insertions.append(Insertion(index, "user", merged))
    del before
    return out, insertions


def merge_adjacent(messages: Sequence[Message]) -> list[Message]:
    """Anthropic role rules: merge consecutive same-role messages; tool results lead a user turn."""
    out: list[Message] = []
    for message in messages:
        if out and out[-1].role is message.role:
            prev = _as_blocks(out[-1])
            parts = (*prev.parts, *_as_blocks(message).parts)
            if message.role is Role.USER:
                results = tuple(p for p in parts if p.kind is PartKind.TOOL_RESULT)
                parts = results + tuple(p for p in parts if p.kind is not PartKind.TOOL_RESULT)
            out[-1] = dataclasses.replace(prev, parts=parts, edited=True)
        else:
            out.append(message)
    return out


def leading_user(fmt: Format, messages: list[Message], dropped: int) -> list[Message]:
    """Anthropic must start with a user turn: say what was removed when truncation left an assistant first."""
    if fmt is not Format.ANTHROPIC or not messages or messages[0].role is Role.USER:
        return messages
    note = Part(PartKind.TEXT, f"[{dropped} earlier messages were removed to fit the context window]", edited=True)
    return [Message(Role.USER, (note,), edited=True), *messages]


def _as_blocks(message: Message) -> Message:
    """A string-content Anthropic message as the equivalent single text block (same text)."""
    parts = tuple(
        Part(PartKind.TEXT, p.text, raw={"type": "text", "text": p.text}) if isinstance(p.raw, str) else p
        for p in message.parts
    )
    return dataclasses.replace(message, parts=parts)


def cut_middle(
    message: Message, excess_tokens: int, count: Callable[[str], int], *, partial: bool = False
) -> Message | None:
    """Cut the middle of the largest text-like part by at least ``excess_tokens`` tokens.

    Keeps the head and tail of the text and marks the cut. ``None`` if no part is large enough;
    with ``partial``, a part too small to lose all of the excess is cut down to ``CUT_MIN_KEEP``
    tokens instead (``None`` only if it is not larger than that).
    """
    candidates = [
        (count(p.text), j)
        for j, p in enumerate(message.parts)
        if p.kind in (PartKind.TEXT, PartKind.TOOL_RESULT, PartKind.DOCUMENT) and p.text
    ]
    if not candidates:
        return None
    tokens, j = max(candidates)
    part = message.parts[j]
    if part.kind is PartKind.DOCUMENT and part.raw is not None:
        return None  # a document block cannot be re-rendered as text without losing its source
    mark = CUT_MARK.format(n=0)
    keep_tokens = tokens - excess_tokens - count(mark) - 8
    if partial and keep_tokens < CUT_MIN_KEEP:
        excess_tokens = tokens - CUT_MIN_KEEP - count(mark) - 8
        keep_tokens = CUT_MIN_KEEP
    if keep_tokens <= 0 or excess_tokens <= 0:
        return None
    text = part.text
    ratio = keep_tokens / max(tokens, 1)
    keep_chars = int(len(text) * ratio)
    tag = len(SUMMARY_OPEN) if text.startswith(SUMMARY_OPEN) else 0  # a cut summary is still one
    for _ in range(8):  # shrink until the count fits; BPE is not linear in characters
        head, tail = text[: max(tag, keep_chars // 2)], text[len(text) - keep_chars // 2 :]
        removed = tokens - count(head) - count(tail)
        new_text = f"{head}\n{CUT_MARK.format(n=removed)}\n{tail}"
        if count(new_text) <= tokens - excess_tokens:
            kind = PartKind.TOOL_RESULT if part.kind is PartKind.TOOL_RESULT else PartKind.TEXT
            return _with_part(message, j, dataclasses.replace(part, kind=kind, text=new_text, edited=True))
        keep_chars = int(keep_chars * 0.85)
        if keep_chars <= 0:
            return None
    return None


def shorten_summary(
    message: Message,
    excess_tokens: int,
    count: Callable[[str], int],
    condense: Callable[[str, int], str],
    *,
    partial: bool = False,
) -> Message | None:
    """A summary message whose summary is condensed again (``condense(summary, budget)``) to lose
    at least ``excess_tokens``: it keeps its frame and its densest lines and facts, where a cut of
    its middle would keep the framing and lose them. ``None`` if it has no summary that can lose
    them; with ``partial``, one that cannot is condensed down to ``CUT_MIN_KEEP`` tokens."""
    for j, part in enumerate(message.parts):
        found = summary_of(part.text) if part.kind is PartKind.TEXT else None
        if found is None:
            continue
        summary, condensed = found
        tokens = count(part.text)
        frame = tokens - count(summary)
        budget = tokens - excess_tokens - frame
        if partial and budget < CUT_MIN_KEEP:
            budget = CUT_MIN_KEEP
        if budget <= 0 or budget >= tokens - frame:
            return None
        for _ in range(4):  # the frame joins tokens differently from the summary alone
            shorter = condense(summary, budget)
            text = summary_text(shorter, condensed)
            if shorter.strip() and (count(text) <= tokens - excess_tokens or (partial and count(text) < tokens)):
                return _with_part(message, j, dataclasses.replace(part, text=text, edited=True))
            budget = int(budget * 0.9)
            if budget <= 0:
                return None
        return None
    return None


def _with_part(message: Message, j: int, part: Part) -> Message:
    """``message`` with its part ``j`` replaced by ``part`` (an edited message)."""
    return dataclasses.replace(message, parts=(*message.parts[:j], part, *message.parts[j + 1 :]), edited=True)
