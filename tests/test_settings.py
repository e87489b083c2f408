"""The one frozen settings object."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from litellm_ctx_hook.errors import ConfigurationError
from litellm_ctx_hook.settings import CacheScope, ManagementMode, Settings, load_settings


def test_specification_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    s = load_settings()
    assert (s.condensation_caution_threshold, s.condensation_warning_threshold, s.condensation_critical_threshold) == (
        0.70,
        0.80,
        0.90,
    )
    assert s.condensation_min_messages == 3 and s.condensation_max_messages == 10
    assert s.condensation_timeout == 30 and s.condensation_cache_ttl == 3600
    assert s.context_cache_size == 100 and s.context_analysis_cache_ttl == 300
    assert s.tiktoken_cache_size == 20_000 and s.base_image_tokens == 85 and s.image_tokens_per_char == 0.25
    assert s.condensation_parallel_requests == 3 and s.max_context_processing_time == 5000
    assert s.condensation_quality_threshold == 0.8 and s.min_preservation_ratio == 0.6
    assert s.real_text_model_tokens == 200_000 and s.real_vision_model_tokens == 65_536
    assert s.condensation_target_ratio == 0.6
    assert s.context_management_mode is ManagementMode.ENFORCE and s.context_cache_scope is CacheScope.TEAM
    assert not s.summarizer_enabled  # no CONDENSATION_MODEL: the local extractive condenser


def test_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDENSATION_MODEL", "summarizer")
    monkeypatch.setenv("CONDENSATION_KEEP_RECENT", "7")
    monkeypatch.setenv("CONTEXT_MANAGEMENT_MODE", "observe")
    monkeypatch.setenv("ENABLE_AI_CONDENSATION", "true")
    s = load_settings()
    assert s.summarizer_enabled and s.condensation_keep_recent == 7
    assert s.context_management_mode is ManagementMode.OBSERVE


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("CONDENSATION_WARNING_THRESHOLD", "1.5"),
        ("CONDENSATION_TIMEOUT", "soon"),
        ("CONTEXT_CACHE_SCOPE", "tenant"),
        ("CONDENSATION_MIN_MESSAGES", "0"),
    ],
)
def test_bad_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match=name):
        load_settings()


def test_thresholds_must_be_ordered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONDENSATION_CAUTION_THRESHOLD", "0.85")
    with pytest.raises(ConfigurationError, match="CONDENSATION_CAUTION_THRESHOLD"):
        load_settings()


def test_frozen() -> None:
    s = load_settings()
    with pytest.raises(ValidationError):
        s.condensation_timeout = 1  # type: ignore[misc]
    assert isinstance(s, Settings)
