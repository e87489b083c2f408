"""Risk levels and strategies at the threshold boundaries."""

from __future__ import annotations

import pytest
from support import settings

from litellm_ctx_hook.analysis.risk import ContextManagementStrategy as S
from litellm_ctx_hook.analysis.risk import ContextRiskLevel as R
from litellm_ctx_hook.analysis.risk import analyze, classify


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
