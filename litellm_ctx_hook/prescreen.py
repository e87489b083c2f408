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
from collections.abc import Mapping
from typing import Any

from .adapters import adapter_for
from .conversation import Format
from .counting import RequestCount, TokenCounter
from .errors import ContextHookError
from .tokenizers import family_for_model

MESSAGES_KEY = {Format.OPENAI: "messages", Format.ANTHROPIC: "messages", Format.RESPONSES: "input"}
_PLAIN = (str, type(None))


def raw_key(raw: Any) -> tuple[Any, ...] | None:
    """A process-local hash of everything in a raw message (``None``: not plain JSON data).

    A message of strings (the common chat message) is hashed by its items as they are; any other
    by its JSON text. Both keep the key order, so the same content written in another order is
    merely a miss. Hashes, like the per-message signatures of the full count, keep the cache small.
    """
    if not isinstance(raw, dict):
        return None
    if all(isinstance(v, _PLAIN) for v in raw.values()):
        return ("items", hash(tuple(raw.items())))
    try:
        text = json.dumps(raw, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):  # not plain JSON data: the full analysis handles it
        return None
    return ("json", len(text), hash(text))


def prescreen(body: Mapping[str, Any], fmt: Format, model: str, counter: TokenCounter) -> RequestCount | None:
    """The request's count for ``model`` (a deployment model), or ``None`` when this shortcut does
    not apply (no message list, a message that is not plain JSON data, or a malformed request,
    which the full analysis reports)."""
    name = MESSAGES_KEY[fmt]
    raws = body.get(name)
    if not isinstance(raws, list):
        return None
    keys = [raw_key(m) for m in raws]
    if any(k is None for k in keys):
        return None
    family = family_for_model(model)
    keys = [(fmt.value, *k) if k is not None else None for k in keys]  # a message counts per format
    known = {i: n for i, k in enumerate(keys) if k is not None and (n := counter.raw_count(family, k)) is not None}
    new = [i for i in range(len(raws)) if i not in known]
    try:
        # One parse of what is not known yet: the new messages, the system prompt and the tools.
        partial = adapter_for(fmt).parse({**body, name: [raws[i] for i in new]})
    except ContextHookError:
        return None
    for i, message in zip(new, partial.messages, strict=True):
        known[i] = tokens = counter.count_message(message, family)
        key = keys[i]
        assert key is not None
        counter.remember_raw(family, key, tokens)
    return counter.assemble(model, tuple(known[i] for i in range(len(raws))), partial.system, partial.tools)
