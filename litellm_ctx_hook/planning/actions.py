"""Action strings (pure): ``kind:detail``, how a managed request says what was done to it.

``clear:3`` (three old outputs cleared), ``condense:aggressive:extractive:12`` and
``extend:…`` (a span of twelve messages condensed, or a cached summary extended to it),
``reuse:12`` (a cached summary sent again), ``truncate:4`` (four messages of old atoms dropped),
``cut:1`` (the middle of one pinned message cut), ``shorten:1`` (a summary condensed again,
shorter, to make room for pinned messages), ``max_tokens:32000->8192`` (the output
reservation lowered). They are reported in the metadata and the ``x-ctx-actions`` header.
"""

from __future__ import annotations

from collections.abc import Iterable

SUMMARY_ACTIONS = frozenset({"reuse", "condense", "extend"})  # a result made of summaries


def kind(action: str) -> str:
    """``clear`` of ``clear:3``."""
    return action.split(":", 1)[0]


def kinds(actions: Iterable[str]) -> frozenset[str]:
    return frozenset(kind(a) for a in actions)


def clear(parts: int) -> str:
    return f"clear:{parts}"


def reuse(messages_condensed: int) -> str:
    return f"reuse:{messages_condensed}"


def truncate(messages: int) -> str:
    return f"truncate:{messages}"


CUT = "cut:1"  # one cut (a message cut twice says it twice)
SHORTEN = "shorten:1"  # one summary condensed again, shorter
EMERGENCY = frozenset({"truncate", "cut", "shorten"})  # tier 3: truncation
