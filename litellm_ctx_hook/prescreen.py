"""The prescreen: a request's token count from counts remembered per raw message, without parsing.

Most requests are SAFE and repeat the previous turn's messages with one or two new ones at the
end. Parsing every message into typed parts only to find that out is most of what the plugin
costs such a request, so each message's count is also remembered under a key of its raw content
(:func:`raw_key`): the messages seen before are looked up, only the new ones are parsed and
counted. The result is the very count the full analysis makes (the same per-message counts, system
prompt, tools and framing); the engine uses it to let SAFE requests through and analyses
everything else in full.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from .adapters import adapter_for
from .conversation import Format
from .counting import RequestCount, TokenCounter
from .errors import ContextHookError
from .tokenizers import family_for_model

MESSAGES_KEY = {Format.OPENAI: "messages", Format.ANTHROPIC: "messages", Format.RESPONSES: "input"}
MAX_NEW = 8  # more new messages than this: not a known conversation that grew by a turn
HEAD = 3  # messages that identify a conversation (system prompt, task, first reply)
_PLAIN = (str, type(None))


def _part_key(value: Any) -> int | None:
    """A hash of a dict of strings by its items (no copy, no escaping), of anything else by its JSON."""
    if isinstance(value, dict) and all(isinstance(v, _PLAIN) for v in value.values()):
        return hash(tuple(value.items()))
    try:
        return hash(json.dumps(value, ensure_ascii=False, separators=(",", ":")))
    except (TypeError, ValueError, RecursionError):  # not plain JSON data: the full analysis handles it
        return None


def raw_key(raw: Any) -> tuple[Any, ...] | None:
    """A process-local hash of everything in a raw message (``None``: not plain JSON data).

    A dict of strings (the common chat message, a text or tool-result block) is hashed by its
    items as they are; a list of content blocks block by block; anything else by its JSON text.
    Key order counts, so the same content written in another order is merely a miss. Hashes, like
    the per-message signatures of the full count, keep the cache small.
    """
    if not isinstance(raw, dict):
        return None
    content = raw.get("content")
    if isinstance(content, list):
        rest = _part_key({k: v for k, v in raw.items() if k != "content"})
        blocks = tuple(_part_key(b) for b in content)
        if rest is None or None in blocks:
            return None
        return ("blocks", rest, hash(blocks))
    key = _part_key(raw)
    return None if key is None else ("message", key)


def prescreen(
    body: Mapping[str, Any], fmt: Format, model: str, counter: TokenCounter, safe_below: int
) -> RequestCount | None:
    """The request's count for ``model`` (a deployment model), or ``None`` when this shortcut does
    not apply: no message list, a message that is not plain JSON data, a malformed request (which
    the full analysis reports), more than ``MAX_NEW`` messages not seen before, or remembered
    messages that alone reach ``safe_below`` tokens (not SAFE: the full analysis follows, so
    stop early)."""
    name = MESSAGES_KEY[fmt]
    raws = body.get(name)
    if not isinstance(raws, list):
        return None
    family = family_for_model(model)
    seen_at = counter.raw_count(family, _not_safe_key(raws, fmt, safe_below))
    if seen_at is not None and len(raws) >= seen_at:
        return None  # this conversation was above SAFE with fewer messages: it still is
    keys: list[tuple[Any, ...]] = []
    known: dict[int, int] = {}
    new: list[int] = []
    seen = 0
    for i, raw in enumerate(raws):
        key = raw_key(raw)
        if key is None:
            return None
        keys.append((fmt.value, *key))  # a message counts per format
        tokens = counter.raw_count(family, keys[-1])
        if tokens is None:
            new.append(i)
            if len(new) > MAX_NEW:
                return None  # not a known conversation that grew by a turn
        else:
            known[i] = tokens
            seen += tokens
            if seen >= safe_below:
                return None
    try:
        # One parse of what is not known yet: the new messages, the system prompt and the tools.
        partial = adapter_for(fmt).parse({**body, name: [raws[i] for i in new]})
    except ContextHookError:
        return None
    for i, message in zip(new, partial.messages, strict=True):
        known[i] = tokens = counter.count_message(message, family)
        counter.remember_raw(family, keys[i], tokens)
    return counter.assemble(model, tuple(known[i] for i in range(len(raws))), partial.system, partial.tools)


def remember(body: Mapping[str, Any], fmt: Format, model: str, counter: TokenCounter, counts: Sequence[int]) -> None:
    """Remember the counts of a request's messages (from a full analysis) by their raw content, so
    the next turn of the same conversation is prescreened."""
    raws = body.get(MESSAGES_KEY[fmt])
    if not isinstance(raws, list) or len(raws) != len(counts):
        return
    family = family_for_model(model)
    for raw, tokens in zip(raws, counts, strict=True):
        key = raw_key(raw)
        if key is not None:
            counter.remember_raw(family, (fmt.value, *key), tokens)


def _not_safe_key(raws: list[Any], fmt: Format, safe_below: int) -> tuple[Any, ...]:
    return ("not-safe", fmt.value, safe_below, hash(tuple(raw_key(r) for r in raws[:HEAD])))


def remember_not_safe(body: Mapping[str, Any], fmt: Format, model: str, counter: TokenCounter, safe_below: int) -> None:
    """Remember that this conversation (its first messages) was above SAFE at this length, so its
    next turns skip the prescreen. Conversations that start alike merely skip it too."""
    raws = body.get(MESSAGES_KEY[fmt])
    if isinstance(raws, list) and raws:
        counter.remember_raw(family_for_model(model), _not_safe_key(raws, fmt, safe_below), len(raws))
