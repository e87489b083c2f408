"""The LiteLLM proxy hook: ``litellm_settings: callbacks: ["litellm_ctx_hook.proxy_handler_instance"]``.

The only code that touches LiteLLM's ``data`` dict. It dispatches on ``call_type`` (chat
completions, Anthropic messages, Responses; anything else passes untouched), manages the request
with the engine, writes the result back, and reports in the request's metadata (the route's own
key: never ``data["metadata"]`` on ``/v1/messages``, which Anthropic forwards upstream), in
response headers and in Prometheus metrics. A request that cannot fit gets a 400 with the token
counts; any fault of the plugin lets the request through unchanged (fail-open).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

from fastapi import HTTPException
from litellm.integrations.custom_logger import CustomLogger

from ..adapters import MESSAGES_KEY
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
            return await timed(self._manage(user_api_key_dict, data, fmt, key, started), self.sections)
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
        except InvalidRequestError as exc:  # the client's malformed body: not our fault, no stack trace
            self.metrics.invalid.labels(route=fmt.value, reason=exc.reason).inc()
            self.shared.count("invalid")
            self._invalid_log.log(request_id, fmt.value, exc)
            return data
        except Exception as exc:
            self.metrics.errors.inc()
            self.shared.count("errors")
            log_fault(
                log,
                f"litellm-ctx-hook failed on request {request_id}; passing it through unchanged",
                exc,
                request_id=request_id,
                route=fmt.value,
            )
            return data

    async def _manage(self, user: Any, data: dict[str, Any], fmt: Format, key: str, started: float) -> dict[str, Any]:
        meta = data.get(key)
        meta = meta if isinstance(meta, dict) else {}
        model = data.get("model")
        if not isinstance(model, str) or _opted_out(data, meta):
            return data
        server_history = fmt is Format.RESPONSES and (data.get("previous_response_id") or data.get("conversation"))
        router = _router()
        target = self.engine.resolve(model, router)
        base = self._summarizer(target.summarizer) if target.summarizer else self.engine.summarizer
        outcome = await self.engine.manage(
            data,
            fmt,
            model,
            router=router,
            caller_metadata={k: v for k, v in meta.items() if k.startswith("user_api_key")},
            # the engine may run on its worker thread: LiteLLM's calls go back to the proxy's loop
            summarizer=LoopBridge(base, asyncio.get_running_loop()) if base is not None else None,
            scope=self.engine.scope_for(getattr(user, "team_id", None), getattr(user, "api_key", None)),
            observe_only=bool(server_history),
        )
        if outcome.changed:  # the managed messages, and a lowered max_tokens
            for name in (MESSAGES_KEY[fmt], *body_keys(fmt)):
                if name in outcome.body and outcome.body[name] is not data.get(name):
                    data[name] = outcome.body[name]
        self._report(data, key, fmt, outcome, time.perf_counter() - started)
        return data

    def _summarizer(self, alias: str) -> Summarizer:
        """The summariser of a per-model alias (one per alias: it remembers what it logged)."""
        if alias not in self._summarizers:
            self._summarizers[alias] = LiteLLMSummarizer(alias, settings=self.settings)
        return self._summarizers[alias]

    def _report(self, data: dict[str, Any], key: str, fmt: Format, o: Outcome, seconds: float) -> None:
        report = {
            "risk_level": o.risk.value,
            "tokens_before": o.tokens_before,
            "tokens_after": o.tokens_after,
            "strategy": o.strategy.value,
            "cache": o.cache,
            "actions": o.metadata.get("actions", []),
            "processing_ms": round(seconds * 1000, 2),
            "prefix_changed": o.prefix_changed,
        }
        for name in ("max_tokens", "cut"):
            if name in o.metadata:
                report[name] = o.metadata[name]
        meta = data.get(key)
        if not isinstance(meta, dict):
            meta = {}
            data[key] = meta
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
