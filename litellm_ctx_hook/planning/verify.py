"""Verification (pure) of a managed conversation before it may be sent.

A result must fit the limit, use no more tokens than the input, keep every pinned message's
content, and be valid for its API: every tool result answers a call made just before it and
every call is answered (except the trailing unanswered calls the client itself sent), and for
Anthropic the first message is a user turn and roles alternate.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..conversation import Format, Message, PartKind, Role
from ..errors import ContextHookError, InvalidRequestError


def _fingerprint(message: Message) -> tuple[tuple[str, str, str | None], ...]:
    return tuple((p.kind.value, p.text, p.tool_id) for p in message.parts)


def _contains(haystack: tuple[object, ...], needle: tuple[object, ...]) -> bool:
    n = len(needle)
    return any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


def contains_message(container: Message, message: Message) -> bool:
    """True when ``message``'s parts appear, unchanged and in order, inside ``container``."""
    want = _fingerprint(message)
    have = _fingerprint(container)
    return have == want or (bool(want) and _contains(have, want))


def pinned_problems(
    original: Sequence[Message], pinned: Sequence[int], result: Sequence[Message], cut: frozenset[int] = frozenset()
) -> list[str]:
    """Each pinned message is in the result, unchanged (as a whole, or as a run of blocks of a merged message).

    ``cut`` lists pinned messages whose middle was cut on purpose (emergency truncation).
    """
    problems = []
    present = {id(m) for m in result}  # an untouched message is the very same object
    todo = [i for i in pinned if i not in cut and id(original[i]) not in present]
    prints = [_fingerprint(m) for m in result if m.edited] if todo else []
    for i in todo:
        want = _fingerprint(original[i])
        if not any(p == want or (want and _contains(p, want)) for p in prints):
            problems.append(f"pinned message {i} was changed or lost")
    return problems


def pairing_problems(
    messages: Sequence[Message], allowed_unanswered: frozenset[str] = frozenset(), *, chat_turns: bool = True
) -> list[str]:
    """Every result answers a call of the preceding assistant turn(s); every call gets answered.

    ``chat_turns``: a new assistant message closes the calls still open (chat formats); Responses
    items (reasoning, message, several function_call items) belong to one turn.
    """
    problems: list[str] = []
    open_calls: set[str] = set()
    for i, m in enumerate(messages):
        if m.role is Role.ASSISTANT:
            ids = m.tool_call_ids
            if chat_turns and open_calls:
                # a new assistant turn while calls are still open (chat formats)
                problems.extend(f"tool call {c} is not answered" for c in sorted(open_calls - allowed_unanswered))
                open_calls.clear()
            open_calls.update(ids)
            continue
        for rid in m.tool_result_ids:
            if rid in open_calls:
                open_calls.discard(rid)
            else:
                problems.append(f"message {i}: tool result {rid} has no preceding call")
        if m.role is not Role.TOOL and not m.has(PartKind.TOOL_RESULT) and open_calls:
            problems.extend(f"tool call {c} is not answered" for c in sorted(open_calls - allowed_unanswered))
            open_calls.clear()
    problems.extend(f"tool call {c} is not answered" for c in sorted(open_calls - allowed_unanswered))
    return problems


def role_problems(fmt: Format, messages: Sequence[Message]) -> list[str]:
    if fmt is not Format.ANTHROPIC or not messages:
        return []
    problems = []
    if messages[0].role is not Role.USER:
        problems.append("first message must be a user turn")
    for i in range(1, len(messages)):
        if messages[i].role is messages[i - 1].role:
            problems.append(f"messages {i - 1} and {i} have the same role")
    for i, m in enumerate(messages):
        if m.role is Role.USER and m.has(PartKind.TOOL_RESULT):
            prev = messages[i - 1] if i else None
            wanted = set(prev.tool_call_ids) if prev is not None else set()
            if not set(m.tool_result_ids) <= wanted:
                problems.append(f"message {i}: tool_result blocks do not answer the previous assistant turn")
    return problems


def unanswered_calls(messages: Sequence[Message]) -> frozenset[str]:
    """Calls the client sent without results (e.g. a trailing call): allowed to stay unanswered."""
    answered = {rid for m in messages for rid in m.tool_result_ids}
    return frozenset(c for m in messages for c in m.tool_call_ids if c not in answered)


def problems(
    fmt: Format,
    original: Sequence[Message],
    result: Sequence[Message],
    pinned: Sequence[int],
    *,
    tokens_before: int,
    tokens_after: int,
    limit: int,
    cut: frozenset[int] = frozenset(),
) -> list[str]:
    """Everything wrong with ``result``; empty means it may be sent."""
    out: list[str] = []
    if tokens_after > limit:
        out.append(f"{tokens_after} tokens exceed the limit of {limit}")
    if tokens_after > tokens_before:
        out.append(f"result has more tokens ({tokens_after}) than the input ({tokens_before})")
    out += pinned_problems(original, pinned, result, cut)
    out += pairing_problems(result, unanswered_calls(original), chat_turns=fmt is not Format.RESPONSES)
    out += role_problems(fmt, result)
    return out


def verification_error(fmt: Format, original: Sequence[Message], found: Sequence[str]) -> ContextHookError:
    """The error for a request no managed version of which passed verification: the client's
    (:class:`InvalidRequestError`) when its own conversation already breaks the API's rules
    (a tool result without its call, roles out of order), else the plugin's."""
    own = pairing_problems(original, unanswered_calls(original), chat_turns=fmt is not Format.RESPONSES)
    own += role_problems(fmt, original)
    if own:
        return InvalidRequestError(
            "the conversation is not valid for its API, so it cannot be managed: " + "; ".join(own[:2])[:240],
            reason="invalid_conversation",
        )
    return ContextHookError("managed request failed verification: " + "; ".join(found))
