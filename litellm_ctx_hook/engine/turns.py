"""The last turn of each conversation, remembered so that its next turn is handled from its new messages.

Most requests repeat the previous turn's messages with one or two new ones at the end. For each
conversation the engine keeps (in process, ``CONTEXT_CACHE_SIZE`` conversations for
``CONTEXT_ANALYSIS_CACHE_TTL`` seconds) a :class:`Turn`: a copy of the last request's messages,
their token counts, and — when that turn was managed by putting cached summaries in place of its
older messages, or by clearing old tool output — the messages that stood for them
(:class:`Managed`). A conversation is known by its first ``HEAD`` messages, its deployment
model, limit, tenant scope and summariser (:func:`memo_key`).

:meth:`TurnMemo.recall` compares a new request with that copy, message by message (equality of
plain JSON data, which Python does in C): the messages up to the first difference keep their
counts; the rest (at most ``MAX_NEW``: a turn or two, or a message whose cache marker moved) are
parsed and counted. The request's count is then exactly what the full analysis would count, and:

* below WARNING, the request passes unchanged (:meth:`Recalled.count`);
* at WARNING and above, if the last turn was managed and its cut messages are unchanged, the
  managed request is the remembered prefix followed by the new request's messages from the cut
  on (:meth:`Recalled.managed_messages`), provided :func:`steps.keeps` says so — the rule the full
  analysis applies to the same prefix (summaries below WARNING; the clearing of the request's own
  level) — without parsing the history again: the prefix is the one verified on the turn that
  made it, and what follows it is the client's own messages, verbatim.

Anything else — a conversation not seen, an edited history, more new messages, a prefix that no
longer keeps the request below WARNING — is analysed in full, and that turn is remembered.

Copies: LiteLLM may change request dicts after the hook. The remembered messages and prefix are
copies (containers copied, strings shared), and the prefix is copied again into every request.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ..adapters import MESSAGES_KEY, adapter_for
from ..analysis.counting import RequestCount, TokenCounter
from ..analysis.tokenizers import family_for_model
from ..cache.memory import MemoryLRU
from ..conversation import Conversation, Format, Message, Part
from ..errors import ContextHookError
from ..planning.steps import Step

# What a count depends on besides the messages (the budget's max_tokens is in the memo key).
CONTEXT_KEYS = {
    Format.OPENAI: ("tools",),
    Format.ANTHROPIC: ("system", "tools"),
    Format.RESPONSES: ("instructions", "tools"),
}
MAX_NEW = 8  # more new or changed messages than this: analysed in full
HEAD = 3  # messages that identify a conversation (system prompt, task, first reply)


def json_copy(value: Any) -> Any:
    """A copy of plain JSON data: dicts and lists copied, everything else (strings, numbers) shared."""
    if isinstance(value, dict):
        return {k: json_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_copy(v) for v in value]
    return value


def _frozen(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple((k, _frozen(v)) for k, v in value.items())
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def memo_key(fmt: Format, raws: Sequence[Any], *parts: object) -> str | None:
    """The key of a conversation: its format, first ``HEAD`` messages and ``parts`` (model, limit,
    scope, ...); ``None`` when a message is not plain JSON data."""
    try:
        head = hash(_frozen(list(raws[:HEAD])))
    except (TypeError, RecursionError):  # an unhashable value inside, or nesting too deep: not remembered
        return None
    return "|".join([fmt.value, *map(str, parts), str(head)])


@dataclass(frozen=True, slots=True)
class Managed:
    """A managed turn: ``prefix`` (output messages, copies) stood for the request's first ``cut``
    messages; the turns that send it again report ``actions`` and ``summaries`` (none when the
    turn cleared old tool output instead); ``step`` says while it is sent again (:func:`steps.keeps`)."""

    cut: int
    prefix: tuple[Any, ...]
    prefix_counts: tuple[int, ...]
    actions: tuple[str, ...]
    summaries: tuple[Mapping[str, Any], ...]
    step: Step


@dataclass(frozen=True, slots=True)
class Turn:
    raws: list[Any]  # copies of the request's messages
    counts: list[int]  # their token counts
    context: dict[str, Any]  # copies of the body fields in CONTEXT_KEYS
    system: tuple[Part, ...]  # parsed, for the count
    tools: tuple[Mapping[str, Any], ...]
    managed: Managed | None = None
    speculated: bool = False  # a speculative summary was started for this conversation


@dataclass(frozen=True, slots=True)
class Recalled:
    """A request matched against its conversation's last turn."""

    key: str
    turn: Turn
    raws: list[Any]  # the request's messages
    same: int  # messages equal to the last turn's, from the start
    counts: tuple[int, ...]  # every message's count
    count: RequestCount = field(repr=False)

    def managed_messages(self) -> tuple[list[Any], tuple[int, ...]] | None:
        """The remembered prefix (fresh copies) and this request's messages from the cut on, with
        their counts; ``None`` when the last turn was not managed or its cut messages changed."""
        managed = self.turn.managed
        if managed is None or self.same < managed.cut:
            return None
        messages = [json_copy(m) for m in managed.prefix] + self.raws[managed.cut :]
        return messages, managed.prefix_counts + self.counts[managed.cut :]


class TurnMemo:
    """The last :class:`Turn` of each conversation (bounded LRU with TTL)."""

    def __init__(self, size: int, ttl_s: float) -> None:
        self._turns: MemoryLRU[Turn] = MemoryLRU(size)
        self._ttl_s = ttl_s

    def clear(self) -> None:
        self._turns.clear()

    def recall(
        self, key: str, body: Mapping[str, Any], fmt: Format, model: str, counter: TokenCounter
    ) -> Recalled | None:
        """The request matched against its conversation's last turn and counted, or ``None``."""
        turn = self._turns.get(key)
        raws = body.get(MESSAGES_KEY[fmt])
        if turn is None or not isinstance(raws, list):
            return None
        if any(body.get(k) != turn.context.get(k) for k in CONTEXT_KEYS[fmt]):
            return None
        known = turn.raws
        same = 0
        for old, new in zip(known, raws, strict=False):
            if old != new:
                break
            same += 1
        fresh = raws[same:]
        if len(fresh) > MAX_NEW:
            return None
        try:
            parsed = adapter_for(fmt).parse({MESSAGES_KEY[fmt]: fresh}).messages if fresh else ()
        except ContextHookError:
            return None  # the full analysis says what is wrong
        family = family_for_model(model)
        counts = (*turn.counts[:same], *(counter.count_message(m, family) for m in parsed))
        count = counter.assemble(model, counts, turn.system, turn.tools)
        return Recalled(key, turn, raws, same, counts, count)

    def advance(self, recalled: Recalled) -> None:
        """Make the recalled request the conversation's last turn (copying only its new messages).
        Turns are replaced, never changed in place: a request being compared with the old one
        (from another thread, say) still sees it whole."""
        turn, same = recalled.turn, recalled.same
        try:
            raws = turn.raws[:same] + [json_copy(m) for m in recalled.raws[same:]]
        except RecursionError:  # nested too deep to copy: not remembered
            self._turns.delete(recalled.key)
            return
        managed = turn.managed if turn.managed is not None and same >= turn.managed.cut else None
        self._turns.put(
            recalled.key, replace(turn, raws=raws, counts=list(recalled.counts), managed=managed), self._ttl_s
        )

    def remember(
        self,
        key: str,
        conversation: Conversation,
        fmt: Format,
        counts: Sequence[int],
        managed: Managed | None = None,
        *,
        speculated: bool = False,
    ) -> None:
        """Remember a fully analysed request as its conversation's last turn."""
        raws = conversation.body.get(MESSAGES_KEY[fmt])
        if not isinstance(raws, list) or len(raws) != len(counts):
            return
        try:
            context = {k: json_copy(conversation.body.get(k)) for k in CONTEXT_KEYS[fmt]}
            copied = json_copy(raws)
        except RecursionError:  # nested too deep to copy: not remembered
            return
        turn = Turn(copied, list(counts), context, conversation.system, conversation.tools, managed, speculated)
        self._turns.put(key, turn, self._ttl_s)

    def attach(self, key: str, raws: Sequence[Any], managed: Managed) -> None:
        """Give the conversation's last turn a managed prefix made from an earlier request of it
        (a speculative summary), if that request's cut messages are still the remembered ones."""
        turn = self._turns.get(key)
        if turn is None or turn.managed is not None or len(turn.raws) < managed.cut or len(raws) < managed.cut:
            return
        if all(a == b for a, b in zip(turn.raws[: managed.cut], raws[: managed.cut], strict=True)):
            self._turns.put(key, replace(turn, managed=managed), self._ttl_s)


def managed_from(
    original: Sequence[Message],
    result: Sequence[Message],
    rendered: Sequence[Any],
    counts: Sequence[int],
    actions: Sequence[str],
    summaries: Sequence[Mapping[str, Any]],
    step: Step,
) -> Managed | None:
    """The :class:`Managed` prefix of a result that ends with the original's last messages, the
    very same objects (``rendered`` and ``counts`` are the result's); everything before them is
    the prefix."""
    keep = prefix_length(original, result)
    if keep == len(result):
        return None
    return Managed(
        len(original) - (len(result) - keep),
        tuple(json_copy(m) for m in rendered[:keep]),
        tuple(counts[:keep]),
        tuple(actions),
        tuple(dict(s) for s in summaries),
        step,
    )


def prefix_length(original: Sequence[Message], result: Sequence[Message]) -> int:
    """How many messages of a managed ``result`` come before the original's last messages (the
    very same objects, the client's own turns): the managed prefix."""
    tail = 0
    while tail < min(len(original), len(result)) and result[-1 - tail] is original[-1 - tail]:
        tail += 1
    return len(result) - tail
