"""The Python API (docs/architecture.md, "Python API"), on a process-wide default engine.

The conversation functions share one set of parameters, defined once in :class:`_Call`:

- ``messages``: the message list, or for ``format="anthropic"`` / ``"responses"`` also the
  ``input`` items or the whole request body with ``system`` / ``instructions`` and ``tools``;
- ``is_vision``: use ``REAL_VISION_MODEL_TOKENS`` when no model is named or its window is unknown;
- ``image_descriptions``: by message index, a description of that message's images (it sizes the
  estimate of an image whose size is unknown);
- ``max_tokens``: the context limit to manage to, overriding the model's window (in a proxied
  request body ``max_tokens`` reserves output instead);
- ``model=`` (keyword-only): the target model; default ``CONTEXT_DEFAULT_MODEL``, else a generic
  model with ``REAL_TEXT_MODEL_TOKENS`` / ``REAL_VISION_MODEL_TOKENS``;
- ``format=`` (keyword-only): ``"openai"`` (default), ``"anthropic"`` or ``"responses"``.

Their positions are the published ones and differ by function (``tests/test_api.py`` pins them):
``messages, is_vision`` come first everywhere; then ``analyze_context_state`` takes
``image_descriptions, max_tokens``; ``get_context_info``, ``should_condense_context`` and
``get_context_management_strategy`` take ``image_descriptions`` (``max_tokens`` is keyword-only);
``apply_intelligent_context_management`` and ``validate_and_truncate_context_async`` take
``max_tokens, image_descriptions``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .adapters import MESSAGES_KEY, adapter_for, wrap_request
from .analysis.risk import ContextAnalysisResult, ContextManagementStrategy, ContextRiskLevel
from .conversation import Format
from .engine.engine import ContextEngine
from .settings import default_settings

Messages = Sequence[Mapping[str, Any]] | Mapping[str, Any] | str
ImageDescriptions = Mapping[int, str] | None


@dataclass(frozen=True)
class ContextManagementResult:
    """The management result of the Python API (docs/architecture.md, "Python API")."""

    original_messages: Any
    processed_messages: Any
    original_tokens: int
    final_tokens: int
    tokens_saved: int
    strategy_used: ContextManagementStrategy
    risk_level: ContextRiskLevel
    processing_time: float
    metadata: dict[str, Any] = field(default_factory=dict)


class _Default:
    """Holder of the lazily built default engine (the API is module-level functions)."""

    engine: ContextEngine | None = None


def default_engine() -> ContextEngine:
    if _Default.engine is None:
        _Default.engine = ContextEngine(default_settings())
    return _Default.engine


def set_default_engine(engine: ContextEngine | None) -> None:
    """Use ``engine`` for the module-level functions (``None``: rebuild from the environment)."""
    _Default.engine = engine


@dataclass(frozen=True)
class _Call:
    """One call of a conversation function: the shared parameters, whatever their positions."""

    messages: Messages
    is_vision: bool
    image_descriptions: ImageDescriptions
    max_tokens: int | None
    model: str | None
    format: str

    def request(self) -> tuple[ContextEngine, Mapping[str, Any], Format, str]:
        """The engine, the request body, its format and the target model (unknown format: an error)."""
        engine, fmt = default_engine(), adapter_for(self.format).format
        return engine, wrap_request(self.messages, fmt), fmt, self.model or engine.settings.context_default_model or ""

    def analyze(self) -> ContextAnalysisResult:
        engine, body, fmt, model = self.request()
        return engine.analyze(
            body,
            fmt,
            model,
            limit=self.max_tokens,
            is_vision=self.is_vision,
            image_descriptions=self.image_descriptions,
        ).result

    async def manage(self) -> ContextManagementResult:
        started = time.perf_counter()
        engine, body, fmt, model = self.request()
        out = await engine.manage(
            body,
            fmt,
            model,
            limit=self.max_tokens,
            is_vision=self.is_vision,
            image_descriptions=self.image_descriptions,
        )
        return ContextManagementResult(
            original_messages=self.messages,
            # the shape of the input: a body for a body, the message list (Responses input) for a list
            processed_messages=out.body if isinstance(self.messages, Mapping) else out.body.get(MESSAGES_KEY[fmt]),
            original_tokens=out.tokens_before,
            final_tokens=out.tokens_after,
            tokens_saved=out.tokens_before - out.tokens_after,
            strategy_used=out.strategy,
            risk_level=out.risk,
            processing_time=time.perf_counter() - started,
            metadata=out.metadata,
        )


def analyze_context_state(
    messages: Messages,
    is_vision: bool = False,
    image_descriptions: ImageDescriptions = None,
    max_tokens: int | None = None,
    *,
    model: str | None = None,
    format: str = "openai",
) -> ContextAnalysisResult:
    """Risk assessment and recommended strategy for a conversation."""
    return _Call(messages, is_vision, image_descriptions, max_tokens, model, format).analyze()


def get_context_info(
    messages: Messages,
    is_vision: bool = False,
    image_descriptions: ImageDescriptions = None,
    *,
    max_tokens: int | None = None,
    model: str | None = None,
    format: str = "openai",
) -> dict[str, Any]:
    """The analysis as a plain dict (``estimated_tokens`` is the full request count for the model)."""
    r = _Call(messages, is_vision, image_descriptions, max_tokens, model, format).analyze()
    return {
        "estimated_tokens": r.current_tokens,
        "hard_limit": r.limit_tokens,
        "available_tokens": r.available_tokens,
        "utilization_percent": r.utilization_percent,
        "risk_level": r.risk_level.value,
        "recommended_strategy": r.recommended_strategy.value,
        "should_condense": r.should_condense,
        "messages_count": r.messages_count,
        "is_vision": is_vision,
        **r.metadata,
    }


def should_condense_context(
    messages: Messages,
    is_vision: bool = False,
    image_descriptions: ImageDescriptions = None,
    *,
    max_tokens: int | None = None,
    model: str | None = None,
    format: str = "openai",
) -> bool:
    """Whether the conversation is at WARNING or above (``analyze_context_state(...).should_condense``)."""
    return _Call(messages, is_vision, image_descriptions, max_tokens, model, format).analyze().should_condense


def get_context_management_strategy(
    messages: Messages,
    is_vision: bool = False,
    image_descriptions: ImageDescriptions = None,
    *,
    max_tokens: int | None = None,
    model: str | None = None,
    format: str = "openai",
) -> ContextManagementStrategy:
    """The strategy the conversation's risk calls for (``analyze_context_state(...).recommended_strategy``)."""
    return _Call(messages, is_vision, image_descriptions, max_tokens, model, format).analyze().recommended_strategy


async def apply_intelligent_context_management(
    messages: Messages,
    is_vision: bool = False,
    max_tokens: int | None = None,
    image_descriptions: ImageDescriptions = None,
    *,
    model: str | None = None,
    format: str = "openai",
) -> ContextManagementResult:
    """Bring the conversation under the target (raises ``ContextWindowExceededError`` if impossible).

    ``processed_messages`` has the shape of ``messages``: a list for a list, a body for a body.
    """
    return await _Call(messages, is_vision, image_descriptions, max_tokens, model, format).manage()


async def validate_and_truncate_context_async(
    messages: Messages,
    is_vision: bool = False,
    max_tokens: int | None = None,
    image_descriptions: ImageDescriptions = None,
    *,
    model: str | None = None,
    format: str = "openai",
) -> tuple[Any, dict[str, Any]]:
    """``(processed messages, metadata)``: the management result's fields merged into its metadata."""
    result = await _Call(messages, is_vision, image_descriptions, max_tokens, model, format).manage()
    meta = dict(result.metadata)
    meta.update(
        original_tokens=result.original_tokens,
        final_tokens=result.final_tokens,
        tokens_saved=result.tokens_saved,
        strategy_used=result.strategy_used.value,
        risk_level=result.risk_level.value,
        processing_time=result.processing_time,
    )
    return result.processed_messages, meta


def get_context_performance_stats() -> dict[str, Any]:
    """Cache sizes and hit ratios, condensation success, timings, summariser calls."""
    engine = default_engine()
    counter = engine.counter
    lookups = counter.hits + counter.misses
    snap = engine.stats.snapshot()
    return {
        "cache_size": counter.cache_size,
        "cache_hit_ratio": counter.hits / lookups if lookups else 0.0,
        "token_cache": {"size": counter.cache_size, "hits": counter.hits, "misses": counter.misses},
        "analysis_cache": {
            "size": engine.analysis_cache_size,
            "hits": snap["analysis_cache_hits"],
            "misses": snap["analysis_cache_misses"],
        },
        "condensation_engine_available": True,
        "ai_condensation_enabled": engine.summarizer is not None,
        "accurate_token_counter_available": engine.settings.enable_accurate_token_counting,
        "condensation_success_rate": snap["condensation_success_rate"],
        "condensation_stats": {
            "success_rate": snap["condensation_success_rate"],
            "avg_tokens_saved": snap["avg_tokens_saved"],
            "avg_processing_time_ms": snap["avg_processing_time_ms"],
        },
        **snap,
    }


def clear_context_caches() -> None:
    """Clear every in-process cache and counter of the default engine."""
    default_engine().clear_caches()
