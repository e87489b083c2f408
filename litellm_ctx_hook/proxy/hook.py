"""The LiteLLM proxy hook: ``litellm_settings: callbacks: ["litellm_ctx_hook.proxy_handler_instance"]``.

The only code that touches LiteLLM's ``data`` dict. It dispatches on ``call_type`` (chat
completions, Anthropic messages, Responses; anything else passes untouched), manages the request
with the engine, writes the result back, and reports in the request's metadata (the route's own
key: never ``data["metadata"]`` on ``/v1/messages``, which Anthropic forwards upstream), in
response headers and in Prometheus metrics. A request that cannot fit gets a 400 with the token
counts; any fault of the plugin lets the request through unchanged (fail-open).

Where it manages. LiteLLM calls ``async_pre_call_deployment_hook`` once per provider call, after
the router chose the deployment (every retry and every fallback included): there the request is
managed to that deployment's own window, so an alias's larger deployments get their room and a
fallback to a smaller model is managed before it is sent. The pre-call hook, which runs once
before routing, only hands the request over (when the proxy has a router; without one it
manages the request itself, to the model's window). Should a route's request come back (response
headers) without the deployment hook having run, the pre-call hook manages that route's requests
from then on, to the smallest window of the alias as before, and the deployment hook manages
them again only for a deployment whose budget is smaller than that. Requests the client or
LiteLLM already manage are left to them (:mod:`~litellm_ctx_hook.adapters.managed`).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Mapping
from functools import partial
from typing import Any

from fastapi import HTTPException
from litellm.integrations.custom_logger import CustomLogger

from ..adapters import MESSAGES_KEY
from ..adapters.managed import Decision, Handling, decide, detect
from ..analysis.limits import budget_for, deployment_target, requested_output
from ..analysis.risk import ContextManagementStrategy
from ..cache.store import SummaryCache
from ..condensing.summarizer import LiteLLMSummarizer, Summarizer
from ..conversation import Format
from ..engine.engine import ContextEngine, Outcome
from ..errors import ContextWindowExceededError, InvalidRequestError
from ..planning.output import body_keys
from ..runtime.logs import InvalidRequestLog, configure, log_fault
from ..runtime.offloop import LoopBridge, OffLoop, SectionTimer, timed
from ..runtime.shutdown import ShutdownGuard
from ..settings import Settings, default_settings
from .metrics import Metrics, serve
from .shared_stats import ENGINE_FIELDS, Growth, SharedStats

log = logging.getLogger("litellm_ctx_hook")

FORMATS = {
    "acompletion": Format.OPENAI,
    "completion": Format.OPENAI,
    "anthropic_messages": Format.ANTHROPIC,
    "aresponses": Format.RESPONSES,
    "responses": Format.RESPONSES,
}
REPORT_KEY = "ctx_hook"
_ROUTES = frozenset(f.value for f in Format)
#: Metadata the pre-call hook leaves for the deployment hook: the route (a request the pre-call
#: hook saw), and the budget it already managed the request to (absent when it handed it over).
ROUTE_KEY = "ctx_hook_route"
MANAGED_LIMIT_KEY = "ctx_hook_managed_limit"
#: Set by the deployment hook: LiteLLM called it for this request.
DEPLOYED_KEY = "ctx_hook_deployed"
INTERNAL_KEYS = (ROUTE_KEY, MANAGED_LIMIT_KEY, DEPLOYED_KEY)
HEADERS = (
    "risk_level",
    "tokens_before",
    "tokens_after",
    "strategy",
    "cache",
    "processing_ms",
    "prefix_changed",
    "actions",
    "max_tokens",  # 32000->8192: the client's max_tokens, lowered to leave the input room
    "cut",  # the pinned messages whose middle was cut (indices into the client's messages)
    "handling",
)


def metadata_key(fmt: Format) -> str:
    """Where proxy metadata lives for this route (docs/architecture.md, "LiteLLM facts the hook
    relies on")."""
    return "metadata" if fmt is Format.OPENAI else "litellm_metadata"


def _router() -> Any:
    module = sys.modules.get("litellm.proxy.proxy_server")
    return getattr(module, "llm_router", None) if module is not None else None


class ContextHook(CustomLogger):
    """Keeps every request inside its model's context window."""

    def __init__(self, settings: Settings | None = None, engine: ContextEngine | None = None) -> None:
        super().__init__()
        self.settings = settings or default_settings()
        # Long requests, and every request's condensation, are managed on a worker thread.
        self.offloop = OffLoop(
            self.settings.context_max_concurrent,
            switch_interval_s=self.settings.context_switch_interval_ms / 1000,
            gc_freeze=self.settings.context_gc_freeze,
            slice_s=self.settings.context_worker_slice_ms / 1000,
        )
        self.engine = engine or ContextEngine(
            self.settings, cache=SummaryCache.from_settings(self.settings), executor=self.offloop
        )
        self.metrics = Metrics()
        cache = self.engine.cache
        self.shared = SharedStats(
            cache.redis if cache is not None else None,
            lambda: {name: getattr(self.engine.stats, name) for name in ENGINE_FIELDS},
            interval_s=self.settings.context_stats_flush_interval,
        )
        self.sections = SectionTimer(self.metrics.loop_sections.observe)  # the plugin's steps on the loop
        if cache is not None:
            cache.on_wait = self.metrics.waited
        self._summarizers: dict[str, LiteLLMSummarizer] = {}  # per-model summariser aliases
        self._handed_over: set[Format] | None = None  # routes the deployment hook manages (see _routes)
        self._summarizer_growth = Growth()  # engine counts already in the summariser metric
        for outcome in ("started", "failed"):  # both series from the start, for rates and alerts
            self.metrics.summarizer_calls.labels(outcome=outcome)
        self._invalid_log = InvalidRequestLog(log)
        configure(self.settings)
        # Background work stops with the server, on its loop and on the worker's.
        self.shutdown = ShutdownGuard(lambda: [loop] if (loop := self.offloop.loop) is not None else [])
        if port := self.settings.context_metrics_port:
            serve(port, multiproc_dir=self.settings.prometheus_multiproc_dir, workers=self.settings.workers)

    # LiteLLM only calls hooks defined on the registered class itself: both are defined here.
    async def async_pre_call_hook(
        self, user_api_key_dict: Any, cache: Any, data: dict[str, Any], call_type: Any
    ) -> Any:
        fmt = FORMATS.get(str(call_type))
        if fmt is None or not isinstance(data, dict):
            return data
        started = time.perf_counter()
        self.offloop.start()  # once: the proxy has started (see OffLoop)
        self.shutdown.install()  # once, from the server's loop
        key = metadata_key(fmt)
        request_id = _request_id(data, key)
        try:
            if self.settings.context_test_fault_injection:
                raise RuntimeError("fault injected by CONTEXT_TEST_FAULT_INJECTION")
            return await timed(self._pre_call(user_api_key_dict, data, fmt, key, started), self.sections)
        except ContextWindowExceededError as exc:
            self.metrics.rejected.inc()
            self.shared.count("rejected")
            raise HTTPException(
                status_code=400,
                detail={
                    "error": f"context_window_exceeded: {exc}",
                    "type": "context_window_exceeded",
                    "tokens": exc.tokens,
                    "limit": exc.limit,
                    "model": exc.model,
                },
            ) from None
        except HTTPException:
            raise
        except Exception as exc:  # malformed (one line, no stack trace) or our fault: passed through
            self._passed_through(exc, request_id, fmt)
            return data

    async def _pre_call(self, user: Any, data: dict[str, Any], fmt: Format, key: str, started: float) -> dict[str, Any]:
        meta = data.get(key)
        if isinstance(meta, dict):
            for name in INTERNAL_KEYS:  # only this hook sets them: never the client
                meta.pop(name, None)
        model = data.get("model")
        if not isinstance(model, str) or _opted_out(data, meta if isinstance(meta, dict) else {}):
            return data
        router = _router()
        if router is not None and fmt in self._routes() and isinstance(data.get(MESSAGES_KEY[fmt]), list):
            # the router calls the deployment hook: it manages the request to the deployment's window
            self._hand_over(data, key, fmt)
            return data
        target = self.engine.resolve(model, router)
        limit = budget_for(target.window, requested_output(data, fmt)).limit
        scope = _scope(self.engine, user)
        await self._manage(
            data, fmt, key, model, target.summarizer, scope, started, router=router, limit=limit, window=target.window
        )
        self._hand_over(data, key, fmt, limit)
        return data

    def _passed_through(self, exc: Exception, request_id: str, fmt: Format) -> None:
        """Count and log a request left as it came: the client's malformed body (one rate-limited
        line, no stack trace: not our fault) or a fault of the plugin's own (fail-open)."""
        if isinstance(exc, InvalidRequestError):
            self.metrics.invalid.labels(route=fmt.value, reason=exc.reason).inc()
            self.shared.count("invalid")
            self._invalid_log.log(request_id, fmt.value, exc)
            return
        self.metrics.errors.inc()
        self.shared.count("errors")
        log_fault(
            log,
            f"litellm-ctx-hook failed on request {request_id}; passing it through unchanged",
            exc,
            request_id=request_id,
            route=fmt.value,
        )

    def _routes(self) -> set[Format]:
        """The routes whose requests the pre-call hook hands over to the deployment hook: all three
        where LiteLLM has the deployment hook (it calls it on every route, 1.106.2 to 1.110.2),
        less any route a request of which came back without it (:meth:`_check_handed_over`)."""
        if self._handed_over is None:
            import litellm.utils

            known = hasattr(litellm.utils, "async_pre_call_deployment_hook")
            self._handed_over = set(Format) if known else set()
        return self._handed_over

    def _check_handed_over(self, data: Mapping[str, Any]) -> None:
        for key in ("metadata", "litellm_metadata"):
            meta = data.get(key)
            if not isinstance(meta, Mapping) or (route := meta.get(ROUTE_KEY)) not in _ROUTES:
                continue
            fmt = Format(route)
            if MANAGED_LIMIT_KEY not in meta and not meta.get(DEPLOYED_KEY) and fmt in self._routes():
                self._routes().discard(fmt)
                log.warning(
                    "LiteLLM did not call async_pre_call_deployment_hook on the %s route: its requests are "
                    "managed before routing from now on, to the smallest window of the model's deployments",
                    route,
                )

    @staticmethod
    def _hand_over(data: dict[str, Any], key: str, fmt: Format, managed_to: int | None = None) -> None:
        """Leave the deployment hook the route and, when managed here, the budget managed to."""
        meta = data.get(key)
        if not isinstance(meta, dict):
            meta = data[key] = {}
        meta[ROUTE_KEY] = fmt.value
        if not isinstance(meta.get(REPORT_KEY), dict):
            meta[REPORT_KEY] = {}  # filled in place: retries and fallbacks get copies of this metadata
        if managed_to is not None:
            meta[MANAGED_LIMIT_KEY] = managed_to

    async def async_pre_call_deployment_hook(self, kwargs: dict[str, Any], call_type: Any) -> dict[str, Any] | None:
        """Manage one provider call to the window of the deployment the router chose."""
        fmt = FORMATS.get(str(getattr(call_type, "value", call_type)).removeprefix("CallTypes."))
        if fmt is None or not isinstance(kwargs, dict):
            return None
        key = "litellm_metadata" if isinstance(kwargs.get("litellm_metadata"), dict) else "metadata"
        meta = kwargs.get(key)
        # Only what the pre-call hook handed over (not the plugin's own summariser calls nor
        # LiteLLM's internal calls), in the route's own call: LiteLLM's bridges (Anthropic
        # messages to Responses, Responses to chat completions) call the hook again, with
        # another call type, on the body already managed and translated.
        if not isinstance(meta, dict) or meta.get(ROUTE_KEY) != fmt.value:
            return None
        meta[DEPLOYED_KEY] = True
        started = time.perf_counter()
        request_id = _request_id(kwargs, key)
        try:
            model = kwargs.get("model")
            if not isinstance(model, str) or not isinstance(kwargs.get(MESSAGES_KEY[fmt]), list):
                return None
            alias = meta.get("model_group")
            info = kwargs.get("model_info")
            deployment = {"litellm_params": {"model": model}, "model_info": info if isinstance(info, dict) else {}}
            target = deployment_target(alias if isinstance(alias, str) else model, deployment, self.settings)
            limit = budget_for(target.window, requested_output(kwargs, fmt)).limit
            managed_to = meta.get(MANAGED_LIMIT_KEY)
            if target.disabled or (isinstance(managed_to, int) and managed_to <= limit):
                return None  # disabled here, or the pre-call hook already managed it to a smaller budget
            user = _CallerKey(meta)
            await timed(
                self._manage(
                    kwargs,
                    fmt,
                    key,
                    model,
                    target.summarizer,
                    _scope(self.engine, user),
                    started,
                    limit=limit,
                    window=target.window,
                ),
                self.sections,
            )
            return kwargs
        except ContextWindowExceededError as exc:
            self.metrics.rejected.inc()
            self.shared.count("rejected")
            raise _context_window_exceeded(exc, kwargs) from None
        except Exception as exc:  # malformed (one line, no stack trace) or our fault: passed through
            self._passed_through(exc, request_id, fmt)
            return None

    async def _manage(
        self,
        data: dict[str, Any],
        fmt: Format,
        key: str,
        model: str,
        summarizer_alias: str | None,
        scope: str,
        started: float,
        *,
        limit: int,
        router: Any = None,
        window: int | None = None,
    ) -> dict[str, Any]:
        """Manage ``data`` (a route's body or a deployment call's kwargs) in place to ``limit``
        tokens, as far as those who already manage it leave it to the plugin. ``window``: the chosen
        deployment's, from which the engine takes the limit (lowering an oversized max_tokens)."""
        meta = data.get(key)
        meta = meta if isinstance(meta, dict) else {}
        decision = decide(detect(data, fmt), limit)
        base = self._summarizer(summarizer_alias) if summarizer_alias else self.engine.summarizer
        manage = partial(
            self.engine.manage,
            data,
            fmt,
            model,
            caller_metadata={k: v for k, v in meta.items() if k.startswith("user_api_key")},
            # the engine may run on its worker thread: LiteLLM's calls go back to the proxy's loop
            summarizer=LoopBridge(base, asyncio.get_running_loop()) if base is not None else None,
            scope=scope,
            # with a router or the deployment's window the engine reserves the requested output itself
            **({"router": router} if router is not None else {"window": window} if window else {"limit": limit}),
        )
        if decision.handling is Handling.MANAGE:
            outcome = await manage()
        else:  # counted and reported, not planned: someone else reduces this request
            outcome = await self._counted(data, fmt, model, router, limit, decision)
            if decision.handling is Handling.FIT_ONLY and outcome.tokens_before > limit:
                outcome = await manage()  # LiteLLM's reduction alone does not fit
        if outcome.changed:  # the managed messages, and a lowered max_tokens
            for name in (MESSAGES_KEY[fmt], *body_keys(fmt)):
                if name in outcome.body and outcome.body[name] is not data.get(name):
                    data[name] = outcome.body[name]
        self._report(data, key, fmt, outcome, time.perf_counter() - started, decision, limit)
        return data

    async def _counted(
        self, data: dict[str, Any], fmt: Format, model: str, router: Any, limit: int, decision: Decision
    ) -> Outcome:
        """The request counted and classified, and left as it is."""
        a = await self.engine.analyzer.analyze_async(
            data, fmt, model, router=router, limit=None if router is not None else limit
        )
        total, risk = a.count.total, a.result.risk_level
        meta: dict[str, Any] = dict(a.result.metadata)
        meta.update(risk_level=risk.value, tokens_before=total, tokens_after=total, limit=a.budget.limit)
        meta["skipped"] = decision.reason
        return Outcome(data, False, total, total, risk, ContextManagementStrategy.MONITOR_ONLY, "none", meta)

    def structure_sizes(self) -> dict[str, int]:
        """Entries held by every in-process structure that could grow with traffic, by name:
        ``token_counts``, ``analyses``, ``turns``, ``speculating`` (summaries started ahead plus the
        worker's background work), ``summarisers`` (per-model aliases), the analyser's
        (:meth:`Analyzer.sizes`), the condenser's (:meth:`Condenser.sizes`) and, with a cache, its L1
        entries (:meth:`SummaryCache.sizes`). For soak tests and footprint checks."""
        engine = self.engine
        sizes = {
            "token_counts": engine.counter.cache_size,
            "analyses": len(engine.analyzer),
            **engine.analyzer.sizes(),
            "turns": len(engine.turn_memo),
            **engine.condenser.sizes(),
            "speculating": len(engine.speculation) + self.offloop.pending,
            "summarisers": len(self._summarizers),
        }
        if engine.cache is not None:
            sizes.update(engine.cache.sizes())
        return sizes

    def _summarizer(self, alias: str) -> Summarizer:
        """The summariser of a per-model alias (one per alias: it remembers what it logged)."""
        if alias not in self._summarizers:
            self._summarizers[alias] = LiteLLMSummarizer(alias, settings=self.settings)
        return self._summarizers[alias]

    def _report(
        self, data: dict[str, Any], key: str, fmt: Format, o: Outcome, seconds: float, decision: Decision, limit: int
    ) -> None:
        report = {
            "risk_level": o.risk.value,
            "tokens_before": o.tokens_before,
            "tokens_after": o.tokens_after,
            "strategy": o.strategy.value,
            "cache": o.cache,
            "actions": o.metadata.get("actions", []),
            "processing_ms": round(seconds * 1000, 2),
            "prefix_changed": o.prefix_changed,
            "limit": limit,
            "deployment_model": o.metadata.get("deployment_model", o.metadata.get("model")),
        }
        for name in ("max_tokens", "cut"):
            if name in o.metadata:
                report[name] = o.metadata[name]
        report["handling"] = decision.handling.value  # manage | observe | fit_only (adapters.managed)
        if decision.signals:
            report["managed_by"] = decision.as_report()
            if decision.reason:
                report["skipped"] = decision.reason
        meta = data.get(key)
        if not isinstance(meta, dict):
            meta = {}
            data[key] = meta
        held = meta.get(REPORT_KEY)
        if isinstance(held, dict):  # shared with the proxy's own metadata: the response headers read it
            held.clear()
            held.update(report)
        else:
            meta[REPORT_KEY] = report
        self.metrics.observe(
            risk=o.risk.value,
            route=fmt.value,
            strategy=o.strategy.value,
            before=o.tokens_before,
            after=o.tokens_after,
            cache=o.cache,
            seconds=seconds,
            prefix_changed=o.prefix_changed,
        )
        self.shared.request(cache=o.cache, seconds=seconds)
        self._follow_engine()

    def _follow_engine(self) -> None:
        """Into the metrics: whether Redis answers, and the summariser calls started and summaries
        failed (error, timeout, quality gate) since the last request."""
        redis = self.engine.cache.redis if self.engine.cache is not None else None
        if redis is not None:
            self.metrics.redis_up.labels(target=redis.target).set(1 if redis.state == "up" else 0)
        stats = self.engine.stats
        counts = {"started": stats.summarizer_calls, "failed": stats.summarizer_failures}
        for outcome, grown in self._summarizer_growth.since_last(counts).items():
            self.metrics.summarizer_calls.labels(outcome=outcome).inc(grown)

    async def async_post_call_response_headers_hook(
        self,
        data: dict[str, Any],
        user_api_key_dict: Any,
        response: object,
        request_headers: dict[str, str] | None = None,
        litellm_call_info: dict[str, object] | None = None,
    ) -> dict[str, str] | None:
        try:
            self._check_handed_over(data)
            for key in ("metadata", "litellm_metadata"):
                meta = data.get(key)
                if isinstance(meta, Mapping) and isinstance(meta.get(REPORT_KEY), Mapping):
                    report = meta[REPORT_KEY]
                    return {
                        f"x-ctx-{n.replace('_', '-')}": _header(report[n])
                        for n in HEADERS
                        if report.get(n) not in (None, [])
                    }
        except Exception as exc:
            log_fault(log, "litellm-ctx-hook could not add response headers", exc)
        return None


class _CallerKey:
    """The caller's team and key as a deployment call's metadata carries them."""

    def __init__(self, meta: Mapping[str, Any]) -> None:
        team, key = meta.get("user_api_key_team_id"), meta.get("user_api_key_hash") or meta.get("user_api_key")
        self.team_id = team if isinstance(team, str) else None
        self.api_key = key if isinstance(key, str) else None


def _scope(engine: ContextEngine, user: Any) -> str:
    return engine.scope_for(getattr(user, "team_id", None), getattr(user, "api_key", None))


def _context_window_exceeded(exc: ContextWindowExceededError, kwargs: Mapping[str, Any]) -> Exception:
    """LiteLLM's own error for a request too long for the deployment: the router tries the
    ``context_window_fallbacks`` (and fallbacks), then answers 400 with this message."""
    from litellm.exceptions import ContextWindowExceededError as LiteLLMContextWindowExceeded

    provider = kwargs.get("custom_llm_provider")
    return LiteLLMContextWindowExceeded(
        message=f"context_window_exceeded: {exc} (tokens={exc.tokens}, limit={exc.limit})",
        model=str(exc.model or kwargs.get("model")),
        llm_provider=provider if isinstance(provider, str) else "",
    )


def _header(value: object) -> str:
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return str(value).lower() if isinstance(value, bool) else str(value)


def _opted_out(data: Mapping[str, Any], meta: Mapping[str, Any]) -> bool:
    for source in (meta, data.get("metadata")):
        if isinstance(source, Mapping) and source.get("ctx_hook_disable") in (True, "true", "1", 1):
            return True
    return False


def _request_id(data: Mapping[str, Any], key: str) -> str:
    meta = data.get(key)
    if isinstance(meta, Mapping):
        for name in ("litellm_call_id", "request_id"):
            if meta.get(name):
                return str(meta[name])
    return str(data.get("litellm_call_id", "?"))


proxy_handler_instance = ContextHook()
