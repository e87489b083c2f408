"""Risk levels and strategies at the threshold boundaries."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import settings

from litellm_ctx_hook.analysis.risk import ContextManagementStrategy as S
from litellm_ctx_hook.analysis.risk import ContextRiskLevel as R
from litellm_ctx_hook.analysis.risk import analyze, classify, condensation_goal


@pytest.mark.parametrize(
    ("tokens", "risk"),
    [
        (0, R.SAFE),
        (699, R.SAFE),
        (700, R.CAUTION),
        (799, R.CAUTION),
        (800, R.WARNING),
        (899, R.WARNING),
        (900, R.CRITICAL),
        (1000, R.CRITICAL),
        (1001, R.OVERFLOW),
    ],
)
def test_boundaries(tokens: int, risk: R) -> None:
    assert classify(tokens, 1000, settings()) is risk


def test_analysis_fields() -> None:
    r = analyze(850, 1000, 12, settings())
    assert r.risk_level is R.WARNING and r.recommended_strategy is S.CONDENSATION_LIGHT and r.should_condense
    assert r.utilization_percent == pytest.approx(85.0) and r.available_tokens == 150 and r.messages_count == 12
    assert analyze(1200, 1000, 1, settings()).recommended_strategy is S.EMERGENCY_TRUNCATION
    assert analyze(950, 1000, 1, settings()).recommended_strategy is S.CONDENSATION_AGGRESSIVE
    assert not analyze(750, 1000, 1, settings()).should_condense


def test_custom_thresholds() -> None:
    s = settings(
        condensation_caution_threshold=0.3, condensation_warning_threshold=0.5, condensation_critical_threshold=0.7
    )
    assert classify(500, 1000, s) is R.WARNING


@pytest.mark.parametrize(
    ("floor", "goal"),
    [
        (0, 600),  # target 600 (60% of 1000), WARNING at 800, a summary's least room 20 (1/50)
        (580, 600),  # the target still leaves the summary its room
        (581, 799),  # it does not: just below WARNING
        (779, 799),
        (780, 980),  # not even that: the room below the limit
        (960, 980),
        (961, 1000),  # no room at all: the limit
        (1200, 1000),
    ],
)
def test_condensation_aims_higher_only_when_the_pinned_messages_leave_no_room(floor: int, goal: int) -> None:
    assert condensation_goal(floor, 1000, settings()) == goal


@given(floor=st.integers(0, 2_000_000), limit=st.integers(1, 1_000_000))
def test_condensation_goal_is_the_target_warning_or_limit(floor: int, limit: int) -> None:
    s = settings()
    goal = condensation_goal(floor, limit, s)
    target, warning = int(0.6 * limit + 1e-9), int(0.8 * limit + 1e-9)
    room = max(1, limit // 50)
    assert goal in {target, warning - 1, limit - room, limit}
    assert goal >= target
    if goal < limit:
        assert floor + room <= goal  # the condensed history has its room below the goal
    else:
        assert floor + room > limit - room  # only when even below the limit there is none
