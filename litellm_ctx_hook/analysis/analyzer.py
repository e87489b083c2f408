"""Analysis of one request (count → budget → risk), with its two in-process caches.

:class:`Analyzer` parses a request, resolves the serving model's window (cached a minute),
counts it and classifies its risk; finished analyses are kept (``CONTEXT_CACHE_SIZE``, for
``CONTEXT_ANALYSIS_CACHE_TTL`` seconds) as counts, never as parsed requests.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..adapters import adapter_for
from ..cache.memory import MemoryLRU
from ..conversation import Conversation, Format, Message
from ..runtime.stats import EngineStats
from ..settings import Settings
from .counting import RequestCount, TokenCounter
from .limits import Budget, ModelTarget, RouterLike, budget_for, requested_output, resolve_target
from .risk import ContextAnalysisResult, analyze

TARGET_TTL_S = 60.0  # how long a resolved model window is reused

MAX_UNKNOWN_MODELS = 1000  # unknown model names remembered (each is logged once)


@dataclass(frozen=True)
class Analysis:
    """Everything the engine knows about a request before changing it."""

    conversation: Conversation
    target: ModelTarget
    budget: Budget
    count: RequestCount
    result: ContextAnalysisResult


@dataclass(frozen=True)
class _Measured:
    """What the analysis cache keeps: not the parsed conversation (the caller has just parsed its
    own, with its own body), so cached entries hold no request objects."""

    target: ModelTarget
    budget: Budget
    count: RequestCount
    result: ContextAnalysisResult


@dataclass(frozen=True)
class _Pending:
    """A parsed request not in the analysis cache, waiting for its count."""

    key: str
    conv: Conversation
    target: ModelTarget
    budget: Budget
    started: float


class Analyzer:
    """Counts and classifies requests for one engine (sharing its counter and statistics)."""

    def __init__(self, settings: Settings, counter: TokenCounter, stats: EngineStats) -> None:
        self.settings = settings
        self.counter = counter
        self.stats = stats
        self._unknown_models: set[str] = set()
        self._analyses: MemoryLRU[_Measured] = MemoryLRU(settings.context_cache_size)
        self._targets: MemoryLRU[ModelTarget] = MemoryLRU(256)

    def clear(self) -> None:
        self._analyses.clear()
        self._targets.clear()

    def __len__(self) -> int:
        return len(self._analyses)

    def sizes(self) -> dict[str, int]:
        """Entries held in process: ``model_targets`` (resolved models' limits) and
        ``unknown_models`` (models already warned about as unknown)."""
        return {"model_targets": len(self._targets), "unknown_models": len(self._unknown_models)}

    def resolve(self, model: str, router: RouterLike | None = None, *, is_vision: bool = False) -> ModelTarget:
        """The model's deployment and window (cached a minute: the router's list rarely changes)."""
        key = f"{model}|{id(router)}|{is_vision}"
        target = self._targets.get(key)
        if target is None:
            if len(self._unknown_models) >= MAX_UNKNOWN_MODELS:  # model names come from clients: bounded
                self._unknown_models.clear()
            target = resolve_target(model, self.settings, router, is_vision=is_vision, warned=self._unknown_models)
            self._targets.put(key, target, TARGET_TTL_S)
        return target

    def analyze(
        self,
        body: Mapping[str, Any],
        fmt: Format,
        model: str,
        *,
        router: RouterLike | None = None,
        limit: int | None = None,
        window: int | None = None,
        is_vision: bool = False,
        image_descriptions: Mapping[int, str] | None = None,
    ) -> Analysis:
        pending = self._begin(body, fmt, model, router, limit, window, is_vision, image_descriptions)
        if isinstance(pending, Analysis):
            return pending
        return self._record(pending, self.counter.count(pending.conv, pending.target.model, image_descriptions))

    async def analyze_async(
        self,
        body: Mapping[str, Any],
        fmt: Format,
        model: str,
        *,
        router: RouterLike | None = None,
        limit: int | None = None,
        window: int | None = None,
        is_vision: bool = False,
        image_descriptions: Mapping[int, str] | None = None,
    ) -> Analysis:
        """Like :meth:`analyze`; counting a large uncached request runs off the event loop."""
        pending = self._begin(body, fmt, model, router, limit, window, is_vision, image_descriptions)
        if isinstance(pending, Analysis):
            return pending
        count = await self.counter.count_async(pending.conv, pending.target.model, image_descriptions)
        return self._record(pending, count)

    def _begin(
        self,
        body: Mapping[str, Any],
        fmt: Format,
        model: str,
        router: RouterLike | None,
        limit: int | None,
        window: int | None,
        is_vision: bool,
        descriptions: Mapping[int, str] | None,
    ) -> Analysis | _Pending:
        """The cached analysis of this request, or what its count is still missing for one."""
        started = time.perf_counter()
        conv = adapter_for(fmt).parse(body)
        key = self._analysis_key(conv, model, limit if window is None else f"w{window}", is_vision, descriptions)
        cached = self._analyses.get(key)
        if cached is not None:
            self.stats.bump("analysis_hits")
            return Analysis(conv, cached.target, cached.budget, cached.count, cached.result)
        target = self.target(model, router, limit, is_vision, window)
        return _Pending(key, conv, target, self.budget(body, fmt, target, limit), started)

    def target(
        self, model: str, router: RouterLike | None, limit: int | None, is_vision: bool, window: int | None = None
    ) -> ModelTarget:
        """The model's target: the ``limit`` the caller gives (no window to look up), the ``window``
        of the deployment LiteLLM chose (its output reservation still the request's), else resolved."""
        if limit is not None and router is None:
            return ModelTarget(model, model, limit, "request")
        if window is not None and limit is None:
            return ModelTarget(model, model, window, "deployment")
        return self.resolve(model, router, is_vision=is_vision)

    @staticmethod
    def budget(body: Mapping[str, Any], fmt: Format, target: ModelTarget, limit: int | None) -> Budget:
        if limit is not None:
            return Budget(limit, 0, limit)
        return budget_for(target.window, requested_output(body, fmt))

    @staticmethod
    def _analysis_key(
        conv: Conversation,
        model: str,
        limit: int | str | None,
        is_vision: bool,
        descriptions: Mapping[int, str] | None,
    ) -> str:
        """Everything an analysis depends on (request parameters included), as one hash."""
        content = (
            tuple(m.signature for m in conv.messages),
            Message.system_of(conv.system).signature,
            repr(conv.tools),
            tuple(sorted((descriptions or {}).items())),
            {k: conv.body.get(k) for k in ("max_tokens", "max_completion_tokens", "max_output_tokens")}.__repr__(),
        )
        return f"{conv.format.value}|{model}|{limit}|{is_vision}|{hash(content)}"

    def result(
        self, fmt: Format, messages: int, target: ModelTarget, budget: Budget, count: RequestCount, started: float
    ) -> ContextAnalysisResult:
        meta = {
            "model": target.alias,
            "deployment_model": target.model,
            "window": target.window,
            "window_source": target.source,
            "reserved_output": budget.reserved_output,
            "format": fmt.value,
            **count.as_metadata(),
        }
        return analyze(
            count.total,
            budget.limit,
            messages,
            self.settings,
            analysis_time=time.perf_counter() - started,
            metadata=meta,
        )

    def _record(self, p: _Pending, count: RequestCount) -> Analysis:
        result = self.result(p.conv.format, len(p.conv.messages), p.target, p.budget, count, p.started)
        self.stats.bump("analysis_misses")
        self._analyses.put(
            p.key, _Measured(p.target, p.budget, count, result), self.settings.context_analysis_cache_ttl
        )
        return Analysis(p.conv, p.target, p.budget, count, result)
