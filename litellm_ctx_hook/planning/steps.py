"""Management in whole steps (pure): when a managed prefix is sent again, and how much clearing takes.

Every turn on which the plugin changes an earlier message rewrites the rest of the request into
the provider's prompt cache, so management moves in few, large steps. A *step* is
``(CONDENSATION_WARNING_THRESHOLD − CONDENSATION_TARGET_RATIO) × limit`` tokens.

* **Summaries** are made to the target and sent again, as they are, while they keep the request
  below WARNING: one new summary per step of growth.
* **Clearing** (old tool output, thinking, images) is quantised to whole steps of the request's
  own size: a request ``n`` whole steps past WARNING (``level`` ``n + 1``) clears the oldest
  clearable parts until they free at least ``level`` steps. At the step line that brings it to
  the target; until the next line it stays below WARNING, and since older parts neither move nor
  change as the conversation grows, every turn of the step clears the very same parts. The
  choice depends on the request alone, so any replica, with or without the turn memo, sends the
  same bytes.

:func:`keeps` is the one rule for sending a managed prefix, used both on a fresh analysis and on
a remembered turn (:mod:`turns`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..analysis.risk import target_tokens, warning_tokens
from ..conversation import Message, Role
from ..settings import Settings

SUMMARIES = "summaries"
CLEARED = "cleared"


@dataclass(frozen=True, slots=True)
class Step:
    """How a managed prefix was made: ``summaries`` (cached summaries in place of older turns) or
    ``cleared`` (old output cleared for the clearing ``level`` of the request it was made for)."""

    kind: str
    level: int = 0


def step_tokens(limit: int, settings: Settings) -> int:
    """Tokens of growth between two management steps: from the target to WARNING (0 when the
    target is not below WARNING: no steps, every action aims at the target itself)."""
    if settings.condensation_target_ratio >= settings.condensation_warning_threshold:
        return 0
    return max(0, warning_tokens(limit, settings) - target_tokens(limit, settings))


def clearing(tokens: int, limit: int, settings: Settings) -> tuple[int, int]:
    """The clearing level of a request of ``tokens`` (0 below WARNING, else 1 + whole steps past
    it) and the tokens clearing must free at that level: enough to stay below WARNING until the
    next step line. Without steps (a target not below WARNING) the level is the request's size
    and clearing aims at the target."""
    step = step_tokens(limit, settings)
    over = tokens - warning_tokens(limit, settings)
    if step == 0:
        return max(0, tokens), tokens - target_tokens(limit, settings)
    level = 0 if over < 0 else over // step + 1
    return level, level * step


def clear_level(tokens: int, limit: int, settings: Settings) -> int:
    return clearing(tokens, limit, settings)[0]


def keeps(step: Step, tokens_before: int, tokens_after: int, limit: int, settings: Settings) -> bool:
    """Whether a managed prefix made as ``step`` is what this request sends.

    The same rule for a prefix found on a fresh analysis (cached summaries, the clearing of this
    request's level) and for one remembered from the conversation's last turn: summaries while
    the request stays below WARNING; clearing while the request is at the level it was made for
    (and so below WARNING). Never a prefix that makes the request larger.
    """
    if tokens_after > tokens_before:
        return False
    warning = warning_tokens(limit, settings)
    if step.kind == CLEARED:
        ceiling = warning - 1 if step_tokens(limit, settings) else target_tokens(limit, settings)
        return tokens_after <= ceiling and step.level == clear_level(tokens_before, limit, settings)
    return step.kind == SUMMARIES and tokens_after < warning


def step_bound(growth: int, window: int, settings: Settings) -> int:
    """Prefix changes allowed after the first managed turn over ``growth`` tokens of growth:
    ``ceil(growth / ((WARNING − target) × window)) + 1``."""
    gap = settings.condensation_warning_threshold - settings.condensation_target_ratio
    return math.ceil(growth / (gap * window)) + 1


def previous_turn_tokens(messages: Sequence[Message], counts: Sequence[int], total: int) -> int:
    """The size of the request's previous turn: this request without its last assistant message
    and what follows it (request k of a conversation is request k − 1, one reply and its answer)."""
    last = next((i for i in range(len(messages) - 1, -1, -1) if messages[i].role is Role.ASSISTANT), None)
    return total if last is None else total - sum(counts[last:])


def prefix_changed(step: Step | None, tokens_previous: int, limit: int, settings: Settings) -> bool:
    """Whether a managed request starts differently from its previous turn (a prompt-cache rewrite).

    ``step`` is how this request's prefix was made (``None``: a new summary or a truncation); the
    previous turn is judged by its size alone, as any replica can: sent as the client sent it
    (below WARNING), or cleared at another level.
    """
    if tokens_previous < warning_tokens(limit, settings) or step is None:
        return True
    if step.kind == CLEARED:
        return step.level != clear_level(tokens_previous, limit, settings)
    return False
