"""The Python API (docs/architecture.md, "Python API"), on a process-wide default engine.

Every function takes the conversation as the original interface did (``messages``, ``is_vision``,
``image_descriptions``, ``max_tokens``) plus the keywords ``model=`` (the target model; default
``CONTEXT_DEFAULT_MODEL``, else a generic model with ``REAL_TEXT_MODEL_TOKENS`` /
``REAL_VISION_MODEL_TOKENS``) and ``format=`` (``"openai"`` default, ``"anthropic"``,
``"responses"``). For Anthropic and Responses, ``messages`` may be the message list (the
``input`` items) alone or the whole request body with ``system`` / ``instructions`` and ``tools``.
Here ``max_tokens`` is the context limit to manage to, overriding the model's window, as in the
original interface; in a proxied request body ``max_tokens`` reserves output instead.
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
    """Holder of the lazily built default engine (the seed API is module-level functions)."""

    engine: ContextEngine | None = None


def default_engine() -> ContextEngine:
    if _Default.engine is None:
        _Default.engine = ContextEngine(default_settings())
    return _Default.engine


def set_default_engine(engine: ContextEngine | None) -> None:
    """Use ``engine`` for the module-level functions (``None``: rebuild from the environment)."""
    _Default.engine = engine


def _model(model: str | None) -> str:
    return model or default_engine().settings.context_default_model or ""


def _format(name: str) -> Format:
    return adapter_for(name).format


def _request(messages: Messages, fmt: Format) -> Mapping[str, Any]:
    return wrap_request(messages, fmt)


def analyze_context_state(
    messages: Messages,
    is_vision: bool = False,
    image_descriptions: Mapping[int, str] | None = None,
    max_tokens: int | None = None,
    *,
    model: str | None = None,
    format: str = "openai",
) -> ContextAnalysisResult:
    """Risk assessment and recommended strategy for a conversation."""
    fmt = _format(format)
    a = default_engine().analyze(
        _request(messages, fmt),
        fmt,
        _model(model),
        limit=max_tokens,
        is_vision=is_vision,
        image_descriptions=image_descriptions,
    )
    return a.result


def get_context_info(
    messages: Messages,
    is_vision: bool = False,
    image_descriptions: Mapping[int, str] | None = None,
    *,
    model: str | None = None,
    format: str = "openai",
    max_tokens: int | None = None,
) -> dict[str, Any]:
    """The analysis as a plain dict (``estimated_tokens`` is the full request count for the model)."""
    r = analyze_context_state(messages, is_vision, image_descriptions, max_tokens, model=model, format=format)
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
    image_descriptions: Mapping[int, str] | None = None,
    *,
    model: str | None = None,
    format: str = "openai",
    max_tokens: int | None = None,
) -> bool:
    return analyze_context_state(
        messages, is_vision, image_descriptions, max_tokens, model=model, format=format
    ).should_condense


def get_context_management_strategy(
    messages: Messages,
    is_vision: bool = False,
    image_descriptions: Mapping[int, str] | None = None,
    *,
    model: str | None = None,
    format: str = "openai",
    max_tokens: int | None = None,
) -> ContextManagementStrategy:
    return analyze_context_state(
        messages, is_vision, image_descriptions, max_tokens, model=model, format=format
    ).recommended_strategy


def _processed(original: Messages, body: Mapping[str, Any], fmt: Format) -> Any:
    if isinstance(original, Mapping):
        return body
    return body.get(MESSAGES_KEY[fmt])


async def apply_intelligent_context_management(
    messages: Messages,
    is_vision: bool = False,
    max_tokens: int | None = None,
    image_descriptions: Mapping[int, str] | None = None,
    *,
    model: str | None = None,
    format: str = "openai",
) -> ContextManagementResult:
    """Bring the conversation under the target (raises ``ContextWindowExceededError`` if impossible).

    ``processed_messages`` has the shape of ``messages``: a list for a list, a body for a body.
    """
    started = time.perf_counter()
    fmt = _format(format)
    out = await default_engine().manage(
        _request(messages, fmt),
        fmt,
        _model(model),
        limit=max_tokens,
        is_vision=is_vision,
        image_descriptions=image_descriptions,
    )
    return ContextManagementResult(
        original_messages=messages,
        processed_messages=_processed(messages, out.body, fmt),
        original_tokens=out.tokens_before,
        final_tokens=out.tokens_after,
        tokens_saved=out.tokens_before - out.tokens_after,
        strategy_used=out.strategy,
        risk_level=out.risk,
        processing_time=time.perf_counter() - started,
        metadata=out.metadata,
    )


async def validate_and_truncate_context_async(
    messages: Messages,
    is_vision: bool = False,
    max_tokens: int | None = None,
    image_descriptions: Mapping[int, str] | None = None,
    *,
    model: str | None = None,
    format: str = "openai",
) -> tuple[Any, dict[str, Any]]:
    """``(processed messages, metadata)``: the original interface's integration entry point."""
    result = await apply_intelligent_context_management(
        messages, is_vision, max_tokens, image_descriptions, model=model, format=format
    )
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
