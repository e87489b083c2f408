"""The output reservation (pure): an oversized ``max_tokens`` gives way before the conversation does.

A client may reserve far more output than its next step needs (Claude Code asks ``max_tokens:
32000`` on every turn, which leaves 40k of a 72k window for input). When a request would have to
be managed under the output it reserved (WARNING or above), that reservation is lowered first,
only as far as the request then stays below WARNING and never below ``OUTPUT_TOKENS_FLOOR``;
what is still too large after that is managed within the window the floor leaves. It is never
raised, a reservation the client did not make is left alone, and a caller that gives the limit
itself (the library API's ``max_tokens``) is not second-guessed.

The lowered value goes into the body under the key the client used (``max_tokens``,
``max_completion_tokens``, ``max_output_tokens``); an extended-thinking budget that would no
longer be below it is lowered with it, as the API requires (never below its minimum, 1024).
A function of the request's size alone, so the full analysis and the turn memo lower alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..analysis.limits import OUTPUT_KEYS, Budget, budget_for
from ..analysis.risk import ContextRiskLevel, classify
from ..conversation import Format
from ..settings import Settings

THINKING_MIN_BUDGET = 1024  # the smallest extended-thinking budget the Messages API accepts


@dataclass(frozen=True, slots=True)
class OutputCap:
    """A lowered output reservation: ``requested`` by the client, ``granted`` by the plugin."""

    requested: int
    granted: int
    keys: tuple[str, ...]  # the body's keys that held the requested value
    thinking: tuple[int, int] | None = None  # the thinking budget, before and after, when lowered too

    @property
    def change(self) -> str:
        """As the ``x-ctx-max-tokens`` header says it: ``32000->8192``."""
        return f"{self.requested}->{self.granted}"

    @property
    def action(self) -> str:
        return f"max_tokens:{self.change}"


def _thinking_budget(body: Mapping[str, Any]) -> int | None:
    thinking = body.get("thinking")
    if not isinstance(thinking, Mapping) or thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    return budget if isinstance(budget, int) and not isinstance(budget, bool) else None


def _requested(body: Mapping[str, Any], fmt: Format) -> tuple[int, tuple[str, ...]] | None:
    """The output the client reserved and every key that says so (the first one counts)."""
    found = [
        (key, value)
        for key in OUTPUT_KEYS[fmt]
        if isinstance(value := body.get(key), int) and not isinstance(value, bool) and value > 0
    ]
    return (found[0][1], tuple(k for k, _ in found)) if found else None


def below_warning_limit(tokens: int, settings: Settings) -> int:
    """The smallest limit under which a request of ``tokens`` is below WARNING."""
    ratio = settings.condensation_warning_threshold
    limit = max(1, int(tokens / ratio) if ratio > 0 else tokens) if tokens > 0 else 1
    while classify(tokens, limit, settings).rank >= ContextRiskLevel.WARNING.rank:
        limit += 1
    return limit


def output_cap(body: Mapping[str, Any], fmt: Format, window: int, tokens: int, settings: Settings) -> OutputCap | None:
    """The lowered reservation for a request of ``tokens`` input tokens to a ``window``-token
    model, or ``None`` when the client's own leaves the request below WARNING (or cannot go lower)."""
    floor = settings.output_tokens_floor
    found = _requested(body, fmt)
    if not floor or found is None:
        return None
    requested, keys = found
    thinking = _thinking_budget(body)
    if thinking is not None:
        floor = max(floor, THINKING_MIN_BUDGET + 1)
    if requested <= floor:
        return None
    budget = budget_for(window, requested)
    if classify(tokens, budget.limit, settings).rank < ContextRiskLevel.WARNING.rank:
        return None
    granted = max(floor, min(requested, window - below_warning_limit(tokens, settings)))
    if granted >= budget.reserved_output:
        return None
    lowered = None
    if thinking is not None and thinking >= granted:
        lowered = (thinking, max(THINKING_MIN_BUDGET, granted - 1))
    return OutputCap(requested, granted, keys, lowered)


def body_keys(fmt: Format) -> tuple[str, ...]:
    """The body fields a cap may change on this route."""
    return (*OUTPUT_KEYS[fmt], "thinking")


def capped_budget(window: int, cap: OutputCap) -> Budget:
    return budget_for(window, cap.granted)


def with_cap(body: Mapping[str, Any], cap: OutputCap | None) -> Mapping[str, Any]:
    """``body`` with the lowered reservation written in (a new mapping; ``body`` itself when no cap)."""
    if cap is None:
        return body
    out = dict(body)
    for key in cap.keys:
        value = body.get(key)
        out[key] = min(value, cap.granted) if isinstance(value, int) else cap.granted
    if cap.thinking is not None and isinstance(thinking := body.get("thinking"), Mapping):
        out["thinking"] = {**thinking, "budget_tokens": cap.thinking[1]}
    return out
