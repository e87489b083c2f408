"""The one settings object: environment variables validated at start-up.

``os.environ`` is read here and nowhere else. Names are those of the plugin's original Python
interface plus the plugin's own (docs/architecture.md, "Configuration"); a bad value raises
:class:`ConfigurationError` naming the variable.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from typing import Any, Self

from pydantic import Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import ConfigurationError


class CondensationStrategyName(StrEnum):
    CONVERSATION_SUMMARY = "conversation_summary"
    KEY_POINT_EXTRACTION = "key_point_extraction"
    EXTRACTIVE = "extractive"


class ManagementMode(StrEnum):
    ENFORCE = "enforce"
    OBSERVE = "observe"


class LogFormat(StrEnum):
    TEXT = "text"
    JSON = "json"


class CacheScope(StrEnum):
    TEAM = "team"
    KEY = "key"
    GLOBAL = "global"


Ratio = Field(ge=0.0, le=1.0)


class Settings(BaseSettings):
    """Every knob of the plugin, frozen once built."""

    model_config = SettingsConfigDict(frozen=True, case_sensitive=False, extra="ignore")

    # -- risk thresholds (fractions of the usable window)
    condensation_caution_threshold: float = Field(0.70, ge=0.0, le=1.0)
    condensation_warning_threshold: float = Field(0.80, ge=0.0, le=1.0)
    condensation_critical_threshold: float = Field(0.90, ge=0.0, le=1.0)

    # -- condensation
    enable_ai_condensation: bool = True
    condensation_model: str | None = None
    condensation_default_strategy: CondensationStrategyName = CondensationStrategyName.CONVERSATION_SUMMARY
    condensation_min_messages: int = Field(3, ge=1)
    condensation_max_messages: int = Field(10, ge=1)
    condensation_timeout: float = Field(30.0, gt=0)
    condensation_cache_ttl: int = Field(3600, ge=1)
    condensation_parallel_requests: int = Field(3, ge=1)
    condensation_quality_threshold: float = Field(0.8, ge=0.0, le=1.0)
    condensation_target_ratio: float = Field(0.6, gt=0.0, le=1.0)
    condensation_keep_recent: int = Field(4, ge=1)
    enable_conversation_flow_preservation: bool = True
    min_preservation_ratio: float = Field(0.6, ge=0.0, le=1.0)
    max_context_processing_time: int = Field(5000, ge=1, description="milliseconds")
    context_management_mode: ManagementMode = ManagementMode.ENFORCE
    context_speculative_condensation: bool = True  # at CAUTION, prepare the WARNING summary in the background
    context_max_concurrent: int = Field(2, ge=1)  # requests managed at once per process (the rest queue)
    # Interpreter-wide settings, for the whole proxy process: opt-in (README, Operations, says what each costs).
    # The thread switch interval once the worker starts, if lower than the current one; 0: left as it is.
    context_switch_interval_ms: float = Field(0.0, ge=0.0)
    # At the first request, gc.freeze() what start-up allocated and make full collections 10x rarer.
    context_gc_freeze: bool = False
    context_worker_slice_ms: float = Field(1.0, ge=0.0)  # then the worker waits for the proxy's idle loop; 0: never
    context_default_model: str | None = None  # target model of the library API when none is given
    # a request's max_tokens above this is lowered (toward it, never below) before its messages are
    # managed: only when the reservation would put the request at WARNING or above; 0: never lowered
    output_tokens_floor: int = Field(8192, ge=0)

    # -- counting
    enable_accurate_token_counting: bool = True
    tiktoken_cache_size: int = Field(20_000, ge=0)  # ~150 bytes an entry
    enable_token_counting_logging: bool = False
    base_image_tokens: int = Field(85, ge=0)
    image_tokens_per_char: float = Field(0.25, ge=0.0)
    enable_dynamic_image_tokens: bool = True
    real_text_model_tokens: int = Field(200_000, ge=1)
    real_vision_model_tokens: int = Field(65_536, ge=1)

    # -- caches and Redis
    enable_context_performance_logging: bool = False
    context_cache_size: int = Field(100, ge=0)
    context_analysis_cache_ttl: int = Field(300, ge=0)
    context_analysis_batch_size: int = Field(50, ge=1)
    cache_cleanup_interval: int = Field(3600, ge=1)
    context_cache_scope: CacheScope = CacheScope.TEAM
    context_cache_signing_key: str | None = None
    # The entry format written to Redis (cache/entries.py FORMAT; 1: the one before it, for a rolling
    # upgrade from a release that reads only format 1: set it until every replica runs this release)
    context_cache_entry_format: int = Field(2, ge=1, le=2)
    redis_url: str | None = None
    redis_host: str | None = None
    redis_port: int = Field(6379, ge=1, le=65535)
    redis_password: str | None = None

    # -- operations
    context_metrics_port: int | None = Field(None, ge=1, le=65535)  # serve /metrics here (else LiteLLM's)
    context_log_format: LogFormat = LogFormat.TEXT  # json: one JSON object per log line
    context_stats_flush_interval: float = Field(5.0, ge=0.0)  # seconds between adds to the shared counters
    context_test_fault_injection: bool = False  # tests only: make the hook fail, to show it fails open
    # set by others: LiteLLM's CLI (--num_workers), prometheus_client's multiprocess mode
    num_workers: str | None = None
    prometheus_multiproc_dir: str | None = None

    @model_validator(mode="after")
    def _thresholds_ordered(self) -> Self:
        c, w, k = (
            self.condensation_caution_threshold,
            self.condensation_warning_threshold,
            self.condensation_critical_threshold,
        )
        if not c <= w <= k:
            raise ValueError(
                "CONDENSATION_CAUTION_THRESHOLD <= CONDENSATION_WARNING_THRESHOLD <= "
                f"CONDENSATION_CRITICAL_THRESHOLD must hold (got {c}, {w}, {k})"
            )
        if self.condensation_min_messages > self.condensation_max_messages:
            raise ValueError(
                "CONDENSATION_MIN_MESSAGES must not exceed CONDENSATION_MAX_MESSAGES "
                f"(got {self.condensation_min_messages} > {self.condensation_max_messages})"
            )
        return self

    @property
    def summarizer_enabled(self) -> bool:
        """True when condensation should call a summariser model (else: local extractive)."""
        return self.enable_ai_condensation and bool(self.condensation_model)

    @property
    def workers(self) -> int:
        """Worker processes of this server (``NUM_WORKERS``, which LiteLLM's CLI sets; 1 if unset)."""
        value = (self.num_workers or "").strip()
        return int(value) if value.isdigit() and int(value) > 0 else 1

    @property
    def processing_budget_s(self) -> float:
        return self.max_context_processing_time / 1000.0


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment (and keyword overrides); raise a clear error if invalid."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            name = "_".join(str(p) for p in err["loc"]).upper() or "settings"
            problems.append(f"{name}: {err['msg']} (got {err.get('input')!r})")
        raise ConfigurationError("invalid litellm-ctx-hook settings: " + "; ".join(problems)) from None


@lru_cache(maxsize=1)
def default_settings() -> Settings:
    """The process-wide settings built once from the environment."""
    return load_settings()


def ensure_offline_tokenizers() -> str | None:
    """Point tiktoken at the BPE files LiteLLM ships unless the user chose a cache dir.

    Returns the directory in use (``None`` when LiteLLM is not installed). LiteLLM's own
    import does the same; doing it here lets the counter work without importing LiteLLM.
    """
    import importlib.util
    import os

    current = os.environ.get("TIKTOKEN_CACHE_DIR")
    if current:
        return current
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(next(iter(spec.submodule_search_locations)), "litellm_core_utils", "tokenizers")
    os.environ["TIKTOKEN_CACHE_DIR"] = path
    return path
