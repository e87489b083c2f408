"""The last turn of each conversation, remembered so that its next turn is handled from its new messages.

Most requests repeat the previous turn's messages with one or two new ones at the end. For each
conversation the engine keeps (in process, ``CONTEXT_CACHE_SIZE`` conversations for
``CONTEXT_ANALYSIS_CACHE_TTL`` seconds) a :class:`Turn`: a digest of each of the last request's
messages, their token counts, and — when that turn was managed by putting cached summaries in
place of its older messages, or by clearing old tool output — the messages that stood for them
(:class:`Managed`). A conversation is known by its first ``HEAD`` messages, its deployment
model, limit, tenant scope and summariser (:func:`memo_key`).

:meth:`TurnMemo.recall` digests a new request's messages and compares the digests with the
remembered ones: the messages up to the first difference keep their counts; the rest (at most
``MAX_NEW``: a turn or two, or a message whose cache marker moved) are parsed and counted. The
request's count is then exactly what the full analysis would count, and:

* below WARNING, the request passes unchanged (:meth:`Recalled.count`);
* at WARNING and above, if the last turn was managed and its cut messages are unchanged, the
  managed request is the remembered prefix followed by the new request's messages from the cut
  on (:meth:`Recalled.managed_messages`), provided :func:`steps.keeps` says so — the rule the full
  analysis applies to the same prefix (summaries below WARNING; the clearing of the request's own
  level) — without parsing the history again: the prefix is the one verified on the turn that
  made it, and what follows it is the client's own messages, verbatim.

Anything else — a conversation not seen, an edited history, more new messages, a prefix that no
longer keeps the request below WARNING — is analysed in full, and that turn is remembered.

What is held, and why nothing held can be changed: a message's digest is Python's own hash of its
``marshal`` serialisation (format 2: the bytes depend on the values and their order alone, never
on which objects are shared): 64-bit SipHash, keyed at random per process unless
``PYTHONHASHSEED`` is set, and only ever compared within one conversation of one tenant. So a turn
holds no object of any request and costs no copy of the history: a repeat turn digests its
messages (C code, about 1.5 ms a megabyte) and copies nothing but the managed prefix. LiteLLM
and the hook change request dicts after the plugin has seen them: the managed prefix is held as
serialised bytes, and every request that sends it gets objects of its own, made from those bytes;
the separate system prompt and tool definitions are held as the plugin's own copies, never handed
out. The memory a conversation holds is a count and a digest a message (about 70 bytes), its
system prompt and tools, and its managed prefix (:meth:`TurnMemo.footprint`).
"""

from __future__ import annotations

import marshal
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from ..adapters import MESSAGES_KEY, adapter_for
from ..analysis.counting import FrozenTools, RequestCount, TokenCounter
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
MARSHAL_VERSION = 2  # the newest format without back-references: its bytes depend on values alone


class Unremembered(ValueError):
    """A value that cannot be remembered: not plain data, or nested too deep."""


def serialised(value: Any) -> bytes:
    """``value`` (plain JSON data) as bytes that depend on its values and their order alone."""
    try:
        return marshal.dumps(value, MARSHAL_VERSION)
    except (ValueError, RecursionError) as exc:  # not plain data, or nested too deep to serialise
        raise Unremembered(str(exc)) from None


def digest(value: Any) -> int:
    """A digest of ``value`` (plain JSON data): equal for equal data of the same types (a 64-bit
    keyed hash of its serialisation: see the module doc)."""
    return hash(serialised(value))


def digests(values: Iterable[Any]) -> tuple[int, ...]:
    dumps = marshal.dumps
    try:
        return tuple(hash(dumps(v, MARSHAL_VERSION)) for v in values)
    except (ValueError, RecursionError) as exc:
        raise Unremembered(str(exc)) from None


def restored(data: bytes) -> Any:
    """A fresh copy of a value held as :func:`serialised` bytes (new objects every call)."""
    return marshal.loads(data)


def json_copy(value: Any) -> Any:
    """A copy of plain JSON data: dicts and lists copied, everything else (strings, numbers) shared."""
    if isinstance(value, dict):
        return {k: json_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_copy(v) for v in value]
    return value


def memo_key(fmt: Format, raws: Sequence[Any], *parts: object) -> str | None:
    """The key of a conversation: its format, first ``HEAD`` messages and ``parts`` (model, limit,
    scope, ...); ``None`` when a message is not plain JSON data."""
    try:
        head = format(digest(list(raws[:HEAD])) & 0xFFFF_FFFF_FFFF_FFFF, "016x")
    except Unremembered:  # something other than plain data inside, or nesting too deep: not remembered
        return None
    return "|".join([fmt.value, *map(str, parts), head])


@dataclass(frozen=True, slots=True)
class Managed:
    """A managed turn: ``prefix`` (output messages, serialised) stood for the request's first ``cut``
    messages; the turns that send it again report ``actions`` and ``summaries`` (none when the
    turn cleared old tool output instead); ``step`` says while it is sent again (:func:`steps.keeps`)."""

    cut: int
    prefix: tuple[bytes, ...]
    prefix_counts: tuple[int, ...]
    actions: tuple[str, ...]
    summaries: tuple[Mapping[str, Any], ...]
    step: Step

    def messages(self) -> list[Any]:
        """The prefix's messages, new objects: the caller may change them."""
        return [restored(m) for m in self.prefix]


@dataclass(frozen=True, slots=True)
class Turn:
    digests: tuple[int, ...]  # of the request's messages
    counts: tuple[int, ...]  # their token counts
    context: tuple[int, ...]  # digests of the body fields in CONTEXT_KEYS
    system: tuple[Part, ...]  # parsed, for the count (the plugin's own: no request's objects)
    tools: FrozenTools  # copies, their JSON made once
    managed: Managed | None = None
    speculated: bool = False  # a speculative summary was started for this conversation


@dataclass(frozen=True, slots=True)
class Recalled:
    """A request matched against its conversation's last turn."""

    key: str
    turn: Turn
    raws: list[Any]  # the request's messages
    digests: tuple[int, ...]  # theirs
    same: int  # messages equal to the last turn's, from the start
    counts: tuple[int, ...]  # every message's count
    count: RequestCount = field(repr=False)

    def managed_messages(self) -> tuple[list[Any], tuple[int, ...]] | None:
        """The remembered prefix (new objects) and this request's messages from the cut on, with
        their counts; ``None`` when the last turn was not managed or its cut messages changed."""
        managed = self.turn.managed
        if managed is None or self.same < managed.cut:
            return None
        return managed.messages() + self.raws[managed.cut :], managed.prefix_counts + self.counts[managed.cut :]


def _context(body: Mapping[str, Any], fmt: Format) -> tuple[int, ...]:
    return digests(body.get(k) for k in CONTEXT_KEYS[fmt])


def _same_prefix(old: Sequence[int], new: Sequence[int]) -> int:
    """How many digests are equal, from the start."""
    n = min(len(old), len(new))
    if old[:n] == new[:n]:  # the usual case, compared in C
        return n
    same = 0
    while old[same] == new[same]:
        same += 1
    return same


class TurnMemo:
    """The last :class:`Turn` of each conversation (bounded LRU with TTL)."""

    def __init__(self, size: int, ttl_s: float) -> None:
        self._turns: MemoryLRU[Turn] = MemoryLRU(size)
        self._ttl_s = ttl_s

    def clear(self) -> None:
        self._turns.clear()

    def __len__(self) -> int:
        """Conversations remembered."""
        return len(self._turns)

    def last(self, key: str) -> Turn | None:
        """The conversation's last turn, if remembered (read-only: turns are replaced, never changed)."""
        return self._turns.get(key)

    def footprint(self, key: str) -> int:
        """Bytes the conversation's last turn holds (0 when not remembered): its containers, its
        digests and counts, its system prompt and tools, and its managed prefix."""
        turn = self._turns.get(key)
        return 0 if turn is None else deep_size(turn)

    def held(self) -> dict[str, int]:
        """:meth:`footprint` of every conversation remembered, least recently used first."""
        live = self._turns.keys()  # (purges the expired ones)
        return {key: self.footprint(key) for key in live}

    def recall(
        self, key: str, body: Mapping[str, Any], fmt: Format, model: str, counter: TokenCounter
    ) -> Recalled | None:
        """The request matched against its conversation's last turn and counted, or ``None``."""
        turn = self._turns.get(key)
        raws = body.get(MESSAGES_KEY[fmt])
        if turn is None or not isinstance(raws, list):
            return None
        try:
            if _context(body, fmt) != turn.context:
                return None
            found = digests(raws)
        except Unremembered:
            return None  # the full analysis says what is wrong
        same = _same_prefix(turn.digests, found)
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
        return Recalled(key, turn, raws, found, same, counts, count)

    def advance(self, recalled: Recalled) -> None:
        """Make the recalled request the conversation's last turn (nothing copied: its digests).
        Turns are replaced, never changed in place: a request being compared with the old one
        (from another thread, say) still sees it whole."""
        turn, same = recalled.turn, recalled.same
        managed = turn.managed if turn.managed is not None and same >= turn.managed.cut else None
        self._turns.put(
            recalled.key, replace(turn, digests=recalled.digests, counts=recalled.counts, managed=managed), self._ttl_s
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
        body = conversation.body
        raws = body.get(MESSAGES_KEY[fmt])
        if not isinstance(raws, list) or len(raws) != len(counts):
            return
        try:
            found, context = digests(raws), _context(body, fmt)
            tools = FrozenTools([restored(serialised(t)) for t in conversation.tools])
        except (Unremembered, ContextHookError):  # not plain data, or nested too deep: not remembered
            return
        system = tuple(replace(p, raw=None) for p in conversation.system)  # the count reads text, kind, image
        turn = Turn(found, tuple(counts), context, system, tools, managed, speculated)
        self._turns.put(key, turn, self._ttl_s)

    def attach(self, key: str, raws: Sequence[Any], managed: Managed) -> None:
        """Give the conversation's last turn a managed prefix made from an earlier request of it
        (a speculative summary), if that request's cut messages are still the remembered ones."""
        turn = self._turns.get(key)
        if turn is None or turn.managed is not None or len(turn.digests) < managed.cut or len(raws) < managed.cut:
            return
        try:
            cut = digests(raws[: managed.cut])
        except Unremembered:
            return
        if turn.digests[: managed.cut] == cut:
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
    the prefix. ``None`` when there is none, or it cannot be remembered."""
    keep = prefix_length(original, result)
    if keep == len(result):
        return None
    try:
        prefix = tuple(serialised(m) for m in rendered[:keep])
    except Unremembered:
        return None
    kept = tuple(json_copy(dict(s)) for s in summaries)
    return Managed(len(original) - (len(result) - keep), prefix, tuple(counts[:keep]), tuple(actions), kept, step)


def prefix_length(original: Sequence[Message], result: Sequence[Message]) -> int:
    """How many messages of a managed ``result`` come before the original's last messages (the
    very same objects, the client's own turns): the managed prefix."""
    tail = 0
    while tail < min(len(original), len(result)) and result[-1 - tail] is original[-1 - tail]:
        tail += 1
    return len(result) - tail


def deep_size(value: object) -> int:
    """The memory of ``value`` and everything it refers to, each object once."""
    seen: set[int] = set()
    stack = [value]
    total = 0
    while stack:
        item = stack.pop()
        if id(item) in seen or item is None or isinstance(item, bool | type | Enum):  # shared by all
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
        if hasattr(item, "__slots__") and not isinstance(item, tuple):
            stack.extend(getattr(item, s) for s in item.__slots__ if hasattr(item, s))
        if isinstance(getattr(item, "__dict__", None), dict):
            stack.append(vars(item))
    return total
