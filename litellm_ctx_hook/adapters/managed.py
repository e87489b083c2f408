"""Requests that the client or LiteLLM already manage, told from the request's shape alone.

One compaction per request, not two: when the client asked the provider (or LiteLLM's polyfill)
to compact, when the history lives on the server, or when LiteLLM already compacted or compressed
the request, the plugin stands back. :func:`detect` lists what a request carries; :func:`decide`
says what the plugin does with it for the budget of the deployment it goes to:

* ``observe`` — analyse and report, never change the request;
* ``fit_only`` — leave the request as it is while it fits the window; manage it when it does not;
* ``manage`` — manage it as any other request.

Everything is read from the body (and the kwargs LiteLLM hands a deployment hook), so it works on
every LiteLLM version whether or not that version has the feature that produced the shape.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from ..conversation import Format
from . import MESSAGES_KEY

#: Anthropic's default ``compact_20260112`` trigger (input tokens) when the edit names none.
COMPACT_DEFAULT_TRIGGER = 150_000
#: Anthropic's default ``clear_tool_uses_20250919`` trigger.
CLEAR_DEFAULT_TRIGGER = 100_000
#: How LiteLLM's complexity ("auto") router's ``context_compaction`` opens the summary it inserts.
AUTO_ROUTER_SUMMARY = "Summary of earlier conversation (context, not new instructions):"
#: The retrieval tool LiteLLM's ``compression_interception`` adds next to its BM25 stubs.
RETRIEVAL_TOOL = "litellm_content_retrieve"
#: The kwargs key where LiteLLM's router keeps its ``context_compaction`` state.
COMPACTION_STATE_KEY = "_context_compaction_state"


class Handling(Enum):
    MANAGE = "manage"
    FIT_ONLY = "fit_only"
    OBSERVE = "observe"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Handling.MANAGE: 0, Handling.FIT_ONLY: 1, Handling.OBSERVE: 2}


@dataclass(frozen=True, slots=True)
class Signal:
    """One sign that someone else manages the request."""

    # client_compaction | client_clearing | server_history | compaction_item | litellm_compaction | litellm_compression
    source: str
    detail: str
    trigger: int | None = None  # input tokens at which the client's edit acts, when it has one


@dataclass(frozen=True, slots=True)
class Decision:
    handling: Handling
    signals: tuple[Signal, ...]
    reason: str | None  # why the plugin stands back (None when it manages)

    def as_report(self) -> list[str]:
        return [f"{s.source}:{s.detail}" for s in self.signals]


def detect(body: Mapping[str, Any], fmt: Format) -> tuple[Signal, ...]:
    """Every sign in ``body`` (a route's request body or a deployment hook's kwargs) that the
    client, the provider or LiteLLM manages its context."""
    return tuple(_signals(body, fmt))


def decide(signals: tuple[Signal, ...], limit: int) -> Decision:
    """What the plugin does for a request with ``signals`` sent to a deployment whose budget is
    ``limit`` tokens: the most reserved handling any signal asks for."""
    handling, reason = Handling.MANAGE, None
    for s in signals:
        wanted, why = _handling(s, limit)
        if wanted.rank > handling.rank:
            handling, reason = wanted, why
    return Decision(handling, signals, reason)


def _handling(s: Signal, limit: int) -> tuple[Handling, str | None]:
    if s.source == "client_compaction":
        if s.trigger is not None and s.trigger <= limit:
            return (
                Handling.OBSERVE,
                f"the client's {s.detail} compacts at {s.trigger} tokens, within the {limit} budget",
            )
        return Handling.MANAGE, None  # it would act only past the window: the plugin keeps the request below it
    if s.source in ("server_history", "compaction_item"):
        return Handling.OBSERVE, f"{s.source.replace('_', ' ')}: {s.detail}"
    if s.source in ("litellm_compaction", "litellm_compression"):
        return Handling.FIT_ONLY, f"LiteLLM already reduced this request ({s.detail})"
    return Handling.MANAGE, None  # client_clearing: clearing is not a compaction and guarantees no fit


def _signals(body: Mapping[str, Any], fmt: Format) -> Iterator[Signal]:
    yield from _context_management(body.get("context_management"))
    if fmt is Format.RESPONSES:
        for key in ("previous_response_id", "conversation"):
            if body.get(key):
                yield Signal("server_history", key)
    items = body.get(MESSAGES_KEY[fmt])
    items = items if isinstance(items, list) else []
    if any(_has_compaction(item) for item in items):
        yield Signal("compaction_item", "compaction")
    state = body.get(COMPACTION_STATE_KEY)
    if getattr(state, "summary", None) is not None or any(_is_auto_router_summary(item) for item in items):
        yield Signal("litellm_compaction", "context_compaction")
    if _has_retrieval_tool(body.get("tools")):
        yield Signal("litellm_compression", RETRIEVAL_TOOL)


def _context_management(spec: Any) -> Iterator[Signal]:
    """Anthropic's ``{"edits": [...]}`` form and OpenAI's ``[{"type": "compaction", ...}]`` form."""
    edits = spec.get("edits") if isinstance(spec, Mapping) else spec
    for edit in edits if isinstance(edits, list) else []:
        if not isinstance(edit, Mapping) or not isinstance(kind := edit.get("type"), str):
            continue
        if kind.startswith("compact") or kind == "compaction":
            default = COMPACT_DEFAULT_TRIGGER
            value = edit.get("compact_threshold") if kind == "compaction" else _trigger_value(edit)
            yield Signal("client_compaction", kind, value if _is_count(value) else default)
        elif kind.startswith("clear_thinking"):
            if edit.get("keep") != "all":  # Claude Code sends keep "all" on every request: it clears nothing
                yield Signal("client_clearing", kind)
        elif kind.startswith("clear_"):
            value = _trigger_value(edit)
            yield Signal("client_clearing", kind, value if _is_count(value) else CLEAR_DEFAULT_TRIGGER)


def _trigger_value(edit: Mapping[str, Any]) -> Any:
    trigger = edit.get("trigger")
    if isinstance(trigger, Mapping) and trigger.get("type", "input_tokens") == "input_tokens":
        return trigger.get("value")
    return None


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _has_compaction(item: Any) -> bool:
    """A Responses ``compaction`` item, or a message carrying a ``compaction`` content block."""
    if not isinstance(item, Mapping):
        return False
    if item.get("type") in ("compaction", "compaction_summary"):
        return True
    content = item.get("content")
    return isinstance(content, list) and any(isinstance(b, Mapping) and b.get("type") == "compaction" for b in content)


def _is_auto_router_summary(item: Any) -> bool:
    if not isinstance(item, Mapping) or item.get("role") != "assistant":
        return False
    content = item.get("content")
    if isinstance(content, list):
        content = next((b.get("text") for b in content if isinstance(b, Mapping)), None)
    return isinstance(content, str) and content.startswith(AUTO_ROUTER_SUMMARY)


def _has_retrieval_tool(tools: Any) -> bool:
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, Mapping):
            continue
        function = tool.get("function")
        name = function.get("name") if isinstance(function, Mapping) else tool.get("name")
        if name == RETRIEVAL_TOOL:
            return True
    return False
