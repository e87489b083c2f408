"""What a session's upstream requests cost with a provider prompt cache (Anthropic's rules).

A request writes a cache entry for its prefix up to each of its breakpoints (``cache_control``
blocks) and reads the longest prefix an earlier request wrote, if that prefix ends at one of its
own breakpoints or at most :data:`LOOKBACK_BLOCKS` content blocks before one (the provider checks
no further back). Tokens up to the read point are *read* (0.1× the input price), from there to the
last breakpoint *written* (1.25×), after it *uncached* (1×). Requests are compared message by
message (JSON equal once ``cache_control`` markers are set aside: they mark, they are not content),
every earlier entry is taken as live (the 5-minute lifetime is refreshed on every hit; replayed
turns are back to back) and the system prompt and tools, absent from the transcripts, are left out.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

LOOKBACK_BLOCKS = 20
READ_PRICE, WRITE_PRICE, UNCACHED_PRICE = 0.1, 1.25, 1.0


def _unmarked(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _unmarked(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [_unmarked(v) for v in value]
    return value


def _has_mark(message: Any) -> bool:
    content = message.get("content") if isinstance(message, dict) else None
    return isinstance(content, list) and any(isinstance(b, dict) and b.get("cache_control") for b in content)


@dataclass(frozen=True)
class Wire:
    """One upstream request as the cache sees it."""

    keys: tuple[str, ...]  # per message: a digest of the chain of messages up to and including it
    tokens: tuple[int, ...]
    blocks: tuple[int, ...]  # content blocks per message
    marks: tuple[int, ...]  # indices of messages carrying a breakpoint


def wire_of(messages: Sequence[Any], tokens: Sequence[int], *, mark_last: bool = False) -> Wire:
    """``mark_last``: a client with automatic prefix caching (or one breakpoint on its newest
    message), for requests that carry no ``cache_control`` of their own."""
    keys, h = [], hashlib.blake2b(digest_size=16)
    for m in messages:
        h.update(json.dumps(_unmarked(m), sort_keys=True).encode())
        keys.append(h.copy().hexdigest())
    blocks = tuple(
        len(m["content"]) if isinstance(m, dict) and isinstance(m.get("content"), list) else 1 for m in messages
    )
    marks = [i for i, m in enumerate(messages) if _has_mark(m)]
    if mark_last and messages and (not marks or marks[-1] != len(messages) - 1):
        marks.append(len(messages) - 1)
    return Wire(tuple(keys), tuple(tokens), blocks, tuple(marks))


@dataclass
class Bill:
    read: int = 0
    write: int = 0
    uncached: int = 0

    @property
    def cost(self) -> float:
        """Input cost in units of the uncached input price per token."""
        return READ_PRICE * self.read + WRITE_PRICE * self.write + UNCACHED_PRICE * self.uncached

    def as_dict(self) -> dict[str, Any]:
        return {"read": self.read, "write": self.write, "uncached": self.uncached, "cost": round(self.cost)}


def bill(requests: Sequence[Wire]) -> Bill:
    """The session's cache reads, writes and uncached tokens, request after request."""
    entries: set[str] = set()
    total = Bill()
    for r in requests:
        read_end = 0
        for b in r.marks:  # the longest written prefix within reach of one of this request's breakpoints
            reach = 0
            for m in range(b + 1, 0, -1):
                if m <= read_end or reach > LOOKBACK_BLOCKS:
                    break
                if r.keys[m - 1] in entries:
                    read_end = m
                    break
                reach += r.blocks[m - 1]
        last = r.marks[-1] + 1 if r.marks else 0
        total.read += sum(r.tokens[:read_end])
        total.write += sum(r.tokens[read_end:last]) if last > read_end else 0
        total.uncached += sum(r.tokens[max(last, read_end) :])
        entries.update(r.keys[b] for b in r.marks)
    return total
