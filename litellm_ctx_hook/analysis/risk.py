"""Risk analysis (pure): utilisation of the budget, risk level and the strategy it calls for."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from ..settings import Settings


class ContextRiskLevel(StrEnum):
    SAFE = "SAFE"
    CAUTION = "CAUTION"
    WARNING = "WARNING"
    CRITICAL = "CRITICAL"
    OVERFLOW = "OVERFLOW"

    @property
    def rank(self) -> int:
        return _ORDER.index(self)


_ORDER = list(ContextRiskLevel)


class ContextManagementStrategy(StrEnum):
    MONITOR_ONLY = "MONITOR_ONLY"
    CONDENSATION_LIGHT = "CONDENSATION_LIGHT"
    CONDENSATION_AGGRESSIVE = "CONDENSATION_AGGRESSIVE"
    EMERGENCY_TRUNCATION = "EMERGENCY_TRUNCATION"


_STRATEGY = {
    ContextRiskLevel.SAFE: ContextManagementStrategy.MONITOR_ONLY,
    ContextRiskLevel.CAUTION: ContextManagementStrategy.MONITOR_ONLY,
    ContextRiskLevel.WARNING: ContextManagementStrategy.CONDENSATION_LIGHT,
    ContextRiskLevel.CRITICAL: ContextManagementStrategy.CONDENSATION_AGGRESSIVE,
    ContextRiskLevel.OVERFLOW: ContextManagementStrategy.EMERGENCY_TRUNCATION,
}


def threshold_tokens(ratio: float, limit: int) -> int:
    """The token count at which ``ratio`` of ``limit`` begins (whole tokens, rounded down; the
    product's float error, like 0.7 × 90 = 62.999…, is not a token less)."""
    return max(0, int(ratio * limit + 1e-9))


def warning_tokens(limit: int, settings: Settings) -> int:
    """The fewest tokens at WARNING: below it a request is left as it is."""
    return threshold_tokens(settings.condensation_warning_threshold, limit)


def target_tokens(limit: int, settings: Settings) -> int:
    """The most tokens every action aims at (``CONDENSATION_TARGET_RATIO`` of the limit)."""
    return threshold_tokens(settings.condensation_target_ratio, limit)


MIN_SUMMARY_ROOM_SHARE = 50  # a condensed history gets at least 1/50 of the limit, or aims higher


def condensation_goal(floor: int, limit: int, settings: Settings) -> int:
    """The request size condensing aims at, given ``floor``: the tokens no condensation removes
    (the pinned messages, the system prompt and tools). The target while it leaves the condensed
    history room; else just below WARNING; else that room below the limit (a summary aimed at the
    limit itself overshoots it by its framing); else the limit. Aimed at the target regardless,
    a summary squeezed between a large pinned head and the target would keep almost nothing
    (Claude Code's ~21k of system prompt and tools and its four newest ~5k reads are above the
    target of a 64k window)."""
    room = max(1, limit // MIN_SUMMARY_ROOM_SHARE)
    for goal in (target_tokens(limit, settings), warning_tokens(limit, settings) - 1, limit - room):
        if floor + room <= goal:
            return goal
    return limit


def classify(tokens: int, limit: int, settings: Settings) -> ContextRiskLevel:
    """SAFE < caution ≤ CAUTION < warning ≤ WARNING < critical ≤ CRITICAL ≤ 100% < OVERFLOW, each
    threshold in whole tokens (:func:`threshold_tokens`), the same the planner uses."""
    if limit <= 0 or tokens > limit:
        return ContextRiskLevel.OVERFLOW
    if tokens >= threshold_tokens(settings.condensation_critical_threshold, limit):
        return ContextRiskLevel.CRITICAL
    if tokens >= warning_tokens(limit, settings):
        return ContextRiskLevel.WARNING
    if tokens >= threshold_tokens(settings.condensation_caution_threshold, limit):
        return ContextRiskLevel.CAUTION
    return ContextRiskLevel.SAFE


def strategy_for(risk: ContextRiskLevel) -> ContextManagementStrategy:
    return _STRATEGY[risk]


@dataclass(frozen=True)
class ContextAnalysisResult:
    """The analysis result of the Python API (docs/architecture.md, "Python API")."""

    risk_level: ContextRiskLevel
    utilization_percent: float
    current_tokens: int
    limit_tokens: int
    available_tokens: int
    recommended_strategy: ContextManagementStrategy
    should_condense: bool
    messages_count: int
    analysis_time: float
    metadata: dict[str, Any] = field(default_factory=dict)


def analyze(
    tokens: int,
    limit: int,
    messages_count: int,
    settings: Settings,
    *,
    analysis_time: float = 0.0,
    metadata: dict[str, Any] | None = None,
) -> ContextAnalysisResult:
    risk = classify(tokens, limit, settings)
    return ContextAnalysisResult(
        risk_level=risk,
        utilization_percent=100.0 * tokens / limit if limit > 0 else float("inf"),
        current_tokens=tokens,
        limit_tokens=limit,
        available_tokens=max(0, limit - tokens),
        recommended_strategy=strategy_for(risk),
        should_condense=risk.rank >= ContextRiskLevel.WARNING.rank,
        messages_count=messages_count,
        analysis_time=analysis_time,
        metadata=metadata or {},
    )
