"""Prometheus metrics (default registry), so they appear next to LiteLLM's own.

Names are prefixed ``litellm_ctx_``. When LiteLLM's ``/metrics`` is not served (its Prometheus
integration off or unavailable), set ``CONTEXT_METRICS_PORT`` to serve them on a port of their own.

Several worker processes (``--num_workers``, gunicorn) each count their own requests. With
``PROMETHEUS_MULTIPROC_DIR`` set (LiteLLM sets it itself for several workers when its ``prometheus``
callback is configured) prometheus_client writes every worker's samples to that directory, and
LiteLLM's ``/metrics`` and the ``CONTEXT_METRICS_PORT`` server both serve the sum over workers.
"""

from __future__ import annotations

import errno
import logging
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, multiprocess, start_http_server

log = logging.getLogger("litellm_ctx_hook")

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def _metric(cls: Any, name: str, doc: str, labels: tuple[str, ...] = (), **kw: Any) -> Any:
    """Create a collector, or return the one already registered (a second hook instance)."""
    try:
        return cls(name, doc, labels, **kw)
    except ValueError:
        return REGISTRY._names_to_collectors[name]


class Metrics:
    def __init__(self) -> None:
        self.requests = _metric(Counter, "litellm_ctx_requests", "Requests seen, by risk level", ("risk", "route"))
        self.actions = _metric(Counter, "litellm_ctx_actions", "Requests changed, by strategy", ("strategy",))
        self.tokens_before = _metric(Counter, "litellm_ctx_tokens_before", "Tokens of requests as received")
        self.tokens_after = _metric(Counter, "litellm_ctx_tokens_after", "Tokens of requests as sent on")
        self.summarizer_calls = _metric(
            Counter,
            "litellm_ctx_summarizer_calls",
            "Summariser calls started, and summaries that failed (error, timeout, rejected by the quality gate)",
            ("outcome",),
        )
        self.summarizer_latency = _metric(
            Histogram, "litellm_ctx_summarizer_latency_seconds", "Summariser call latency", buckets=_LATENCY_BUCKETS
        )
        self.cache = _metric(Counter, "litellm_ctx_cache", "Summary cache lookups", ("result",))
        self.latency = _metric(
            Histogram, "litellm_ctx_processing_seconds", "Time the hook adds to a request", buckets=_LATENCY_BUCKETS
        )
        self.errors = _metric(Counter, "litellm_ctx_errors", "Internal plugin faults (request passed unchanged)")
        self.rejected = _metric(Counter, "litellm_ctx_rejected", "Requests rejected as too large for the model")
        self.loop_sections = _metric(
            Histogram,
            "litellm_ctx_loop_section_seconds",
            "Each synchronous step of the plugin on the proxy's event loop",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25),
        )
        self.invalid = _metric(
            Counter,
            "litellm_ctx_invalid_requests",
            "Malformed requests passed through unchanged, by route and reason",
            ("route", "reason"),
        )
        self.redis_up = _metric(
            Gauge,
            "litellm_ctx_redis_up",
            "1 while the shared Redis cache answers, 0 while its circuit breaker is open (absent without Redis)",
            ("target",),
            multiprocess_mode="livemin",
        )
        self.single_flight_wait = _metric(
            Histogram,
            "litellm_ctx_single_flight_wait_seconds",
            "Time a request waited for a summary another caller (worker, replica) was making",
            ("outcome",),
            buckets=_LATENCY_BUCKETS,
        )
        self.prefix_changes = _metric(
            Counter,
            "litellm_ctx_prefix_changes",
            "Requests sent with a prefix other than their previous turn's (a provider prompt-cache rewrite)",
            ("route",),
        )

    def observe(
        self,
        *,
        risk: str,
        route: str,
        strategy: str,
        before: int,
        after: int,
        cache: str,
        seconds: float,
        prefix_changed: bool = False,
    ) -> None:
        self.requests.labels(risk=risk, route=route).inc()
        if prefix_changed:
            self.prefix_changes.labels(route=route).inc()
        if before != after:
            self.actions.labels(strategy=strategy).inc()
        self.tokens_before.inc(max(0, before))
        self.tokens_after.inc(max(0, after))
        if cache != "none":
            self.cache.labels(result=cache).inc()
        self.latency.observe(seconds)

    def waited(self, outcome: str, seconds: float) -> None:
        self.single_flight_wait.labels(outcome=outcome).observe(seconds)


def serve(port: int, *, multiproc_dir: str | None = None, workers: int = 1) -> bool:
    """Serve the metrics on ``port`` (for proxies without LiteLLM's /metrics); ``False`` when another
    worker of the same server already does.

    With ``multiproc_dir`` the registry served is the sum over every worker's samples in it, so the
    first worker to bind the port serves them all. Without it each worker has its own counts, and only
    that worker's are served: a warning says so.
    """
    registry = REGISTRY
    if multiproc_dir:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=multiproc_dir)  # type: ignore[no-untyped-call]
    elif workers > 1:
        log.warning(
            "CONTEXT_METRICS_PORT with %d workers serves one worker's metrics: set PROMETHEUS_MULTIPROC_DIR "
            "to an empty directory shared by the workers to serve their sum",
            workers,
        )
    try:
        start_http_server(port, registry=registry)
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE or workers <= 1:
            raise
        log.info("metrics port %d is served by another worker", port)
        return False
    return True
