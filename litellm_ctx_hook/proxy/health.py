"""The health of a deployment: Redis, the proxy config's summariser aliases, the shared counters.

:func:`check_health` gathers the facts (the I/O: a few Redis commands, reading ``config.yaml``);
:func:`evaluate` turns them into a :class:`HealthReport` (pure): a status per check, the issues
found and what to do about each. The overall status is the worst check's: ``healthy`` (exit 0),
``degraded`` (1: requests are served, but worse than they could be), ``unhealthy`` (2: the
deployment is not working as configured).

The counters are those every worker and replica adds to ``ctxhook:v1:stats``
(:mod:`.shared_stats`), totals since the hash was created.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from ..cache.keys import PREFIX, STATS_KEY
from ..cache.redis_target import connect, target_from_settings
from ..errors import ContextHookError
from ..settings import Settings
from .shared_stats import percentile_ms

HOOK_CALLBACK = "litellm_ctx_hook.proxy_handler_instance"
REDIS_TIMEOUT_S = 2.0  # per connect and per command
MAX_SCANNED_KEYS = 200_000  # key counts stop here (reported as partial)
MIN_SAMPLES = 20  # ratios over fewer events are not judged
SLOW_REDIS_MS = 50.0
MEMORY_FULL = 0.9
LOW_CACHE_HIT_RATIO = 0.3
LOW_CONDENSATION_SUCCESS = 0.9
HIGH_SUMMARIZER_FAILURES = 0.2
HIGH_REJECTION_RATE = 0.05
BUDGET_SHARE = 0.8  # p95 processing time above this share of MAX_CONTEXT_PROCESSING_TIME


class Status(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"

    @property
    def exit_code(self) -> int:
        return _ORDER.index(self)


_ORDER = [Status.HEALTHY, Status.DEGRADED, Status.UNHEALTHY]


class ConfigReadError(ContextHookError):
    """The proxy config given to ``health --config`` cannot be read."""


@dataclass(frozen=True)
class RedisFacts:
    configured: bool
    target: str = ""
    error: str | None = None  # set when Redis could not be reached
    latency_ms: float = 0.0
    used_memory: int = 0
    maxmemory: int = 0
    maxmemory_policy: str = ""
    keys: dict[str, dict[str, int]] = field(default_factory=dict)  # kind -> scope -> count
    keys_partial: bool = False
    counters: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ConfigFacts:
    path: str
    model_names: tuple[str, ...]
    summarizers: dict[str, str]  # alias -> where it is asked for
    hook_registered: bool


@dataclass
class HealthReport:
    status: Status = Status.HEALTHY
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    issues: list[str] = field(default_factory=list)
    recommendations: list[str] = field(default_factory=list)

    def add(self, check: str, status: Status, **details: Any) -> None:
        self.checks[check] = {"status": status.value, **details}
        self._worsen(status)

    def problem(self, check: str, status: Status, issue: str, recommendation: str) -> None:
        """Record an issue found by ``check`` (its status worsens to ``status`` at least)."""
        entry = self.checks.setdefault(check, {"status": Status.HEALTHY.value})
        if _ORDER.index(status) > _ORDER.index(Status(entry["status"])):
            entry["status"] = status.value
        self.issues.append(issue)
        self.recommendations.append(recommendation)
        self._worsen(status)

    def _worsen(self, status: Status) -> None:
        if _ORDER.index(status) > _ORDER.index(self.status):
            self.status = status

    def summary_line(self) -> str:
        """One line: the status and, when not healthy, the first issue."""
        return self.status.value if not self.issues else f"{self.status.value}: {self.issues[0]}"

    def to_json(self) -> dict[str, Any]:
        return {
            "status": self.status.value,
            "checks": self.checks,
            "issues": self.issues,
            "recommendations": self.recommendations,
        }


# -- gathering (I/O) ---------------------------------------------------------------------------------


async def gather_redis(settings: Settings) -> RedisFacts:
    """Ping, memory, key counts by kind and scope, and the shared counters of the configured Redis."""
    target = target_from_settings(settings)
    if target is None:
        return RedisFacts(configured=False)
    conn = connect(target, connect_timeout_s=REDIS_TIMEOUT_S, read_timeout_s=REDIS_TIMEOUT_S)
    client = conn.client
    try:
        pings = []
        for _ in range(3):
            started = time.perf_counter()
            await client.ping()
            pings.append((time.perf_counter() - started) * 1000)
        info = await client.info("memory")
        keys, partial = await _count_keys(client)
        raw = await client.hgetall(STATS_KEY)
    except Exception as exc:
        return RedisFacts(configured=True, target=target.describe(), error=_describe_error(exc))
    finally:
        with contextlib.suppress(Exception):  # closing a connection that never opened
            await conn.close()
    memory = _merged_info(info)
    return RedisFacts(
        configured=True,
        target=target.describe(),
        latency_ms=statistics.median(pings),
        used_memory=int(memory.get("used_memory", 0)),
        maxmemory=int(memory.get("maxmemory", 0)),
        maxmemory_policy=str(memory.get("maxmemory_policy", "")),
        keys=keys,
        keys_partial=partial,
        counters={_text(k): int(v) for k, v in raw.items()},
    )


def _describe_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _merged_info(info: Any) -> dict[str, Any]:
    """``INFO memory`` of a server, or of a cluster's nodes added up (one dict per node)."""
    if isinstance(info, Mapping) and info and all(isinstance(v, Mapping) for v in info.values()):
        merged: dict[str, Any] = {}
        for node in info.values():
            for name in ("used_memory", "maxmemory"):
                merged[name] = merged.get(name, 0) + int(node.get(name, 0))
            merged.setdefault("maxmemory_policy", node.get("maxmemory_policy", ""))
        return merged
    return dict(info) if isinstance(info, Mapping) else {}


async def _count_keys(client: Any) -> tuple[dict[str, dict[str, int]], bool]:
    counts: dict[str, dict[str, int]] = {}
    seen = 0
    async for key in client.scan_iter(match=f"{PREFIX}:*", count=1000):
        parts = _text(key).split(":")
        if len(parts) == 5:  # ctxhook:v1:{kind}:{scope}:{digest}
            by_scope = counts.setdefault(parts[2], {})
            by_scope[parts[3]] = by_scope.get(parts[3], 0) + 1
        seen += 1
        if seen >= MAX_SCANNED_KEYS:
            return counts, True
    return counts, False


def read_config(path: Path, settings: Settings) -> ConfigFacts:
    """The model names of a LiteLLM ``config.yaml`` and the summariser aliases the plugin will call."""
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigReadError(f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigReadError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, Mapping):
        raise ConfigReadError(f"{path} is not a LiteLLM config (a mapping with model_list)")
    entries = [m for m in doc.get("model_list") or [] if isinstance(m, Mapping)]
    names = tuple(str(m["model_name"]) for m in entries if m.get("model_name"))
    wanted: dict[str, str] = {}
    if settings.summarizer_enabled and settings.condensation_model:
        wanted[settings.condensation_model] = "CONDENSATION_MODEL"
    for m in entries:
        ctx = (m.get("model_info") or {}).get("ctx_hook") if isinstance(m.get("model_info"), Mapping) else None
        if isinstance(ctx, Mapping) and ctx.get("summarizer"):
            wanted.setdefault(str(ctx["summarizer"]), f"model_info.ctx_hook.summarizer of {m.get('model_name')}")
    settings_block = doc.get("litellm_settings")
    callbacks = settings_block.get("callbacks") if isinstance(settings_block, Mapping) else None
    callbacks = [callbacks] if isinstance(callbacks, str) else callbacks or []
    return ConfigFacts(str(path), names, wanted, HOOK_CALLBACK in [str(c) for c in callbacks])


async def check_health(settings: Settings, config: Path | None = None) -> HealthReport:
    """Gather every fact and evaluate them (a config that cannot be read makes the report unhealthy)."""
    config_facts: ConfigFacts | str | None = None
    if config is not None:
        try:
            config_facts = read_config(config, settings)
        except ConfigReadError as exc:
            config_facts = str(exc)
    try:
        async with asyncio.timeout(6 * REDIS_TIMEOUT_S):
            redis = await gather_redis(settings)
    except TimeoutError:
        target = target_from_settings(settings)
        redis = RedisFacts(True, target.describe() if target else "", error="no answer in time")
    return evaluate(settings, redis, config_facts)


# -- judging (pure) ----------------------------------------------------------------------------------


def evaluate(settings: Settings, redis: RedisFacts, config: ConfigFacts | str | None) -> HealthReport:
    report = HealthReport()
    _judge_redis(report, redis)
    _judge_config(report, config)
    if redis.configured and redis.error is None:
        _judge_counters(report, redis.counters, settings)
    return report


def _judge_redis(report: HealthReport, r: RedisFacts) -> None:
    if not r.configured:
        report.add("redis", Status.HEALTHY, configured=False)
        report.recommendations.append(
            "No Redis configured: summaries stay in each process and there are no shared counters; "
            "set REDIS_URL when the proxy runs more than one worker or replica"
        )
        return
    if r.error is not None:
        report.add("redis", Status.UNHEALTHY, target=r.target, reachable=False, error=r.error)
        report.problem(
            "redis",
            Status.UNHEALTHY,
            f"Redis at {r.target} is unreachable ({r.error})",
            "Check that Redis runs and that REDIS_URL points to it; meanwhile every replica condenses on its "
            "own with its in-process cache",
        )
        return
    report.add(
        "redis",
        Status.HEALTHY,
        target=r.target,
        reachable=True,
        latency_ms=round(r.latency_ms, 2),
        used_memory_bytes=r.used_memory,
        maxmemory_bytes=r.maxmemory,
        maxmemory_policy=r.maxmemory_policy,
        keys=r.keys,
        keys_partial=r.keys_partial,
    )
    if r.latency_ms > SLOW_REDIS_MS:
        report.problem(
            "redis",
            Status.DEGRADED,
            f"Redis answers in {r.latency_ms:.0f} ms (above {SLOW_REDIS_MS:.0f} ms)",
            "Run Redis close to the proxies: lookups slower than the plugin's 250 ms timeout count as misses",
        )
    if r.maxmemory and r.used_memory > MEMORY_FULL * r.maxmemory:
        report.problem(
            "redis",
            Status.DEGRADED,
            f"Redis memory at {100 * r.used_memory / r.maxmemory:.0f}% of maxmemory",
            "Raise maxmemory, or lower CONDENSATION_CACHE_TTL so summaries expire sooner",
        )
    if r.maxmemory and r.maxmemory_policy == "noeviction":
        report.recommendations.append(
            "maxmemory-policy is noeviction: a full Redis refuses new summaries; volatile-lru evicts old ones"
        )
    elif not r.maxmemory:
        report.recommendations.append(
            "Redis has no maxmemory: set one with maxmemory-policy volatile-lru so summaries cannot fill the server"
        )


def _judge_config(report: HealthReport, config: ConfigFacts | str | None) -> None:
    if config is None:
        return
    if isinstance(config, str):
        report.add("config", Status.UNHEALTHY, error=config)
        report.problem("config", Status.UNHEALTHY, config, "Pass the config.yaml the proxy runs with (--config)")
        return
    resolved = {alias: _served(alias, config.model_names) for alias in config.summarizers}
    report.add("config", Status.HEALTHY, path=config.path, hook_registered=config.hook_registered, summarizers=resolved)
    if not config.hook_registered:
        report.problem(
            "config",
            Status.DEGRADED,
            f"{config.path} does not register the plugin",
            f'Add "{HOOK_CALLBACK}" to litellm_settings.callbacks',
        )
    for alias, ok in resolved.items():
        if not ok:
            report.problem(
                "config",
                Status.DEGRADED,
                f"summariser {alias!r} ({config.summarizers[alias]}) is not a model_name in {config.path}",
                f"Add a model_list entry named {alias!r} or correct the alias; until then every condensation "
                "falls back to the local extractive condenser",
            )


def _served(alias: str, names: tuple[str, ...]) -> bool:
    return any(alias == n or ("*" in n and fnmatch.fnmatchcase(alias, n)) for n in names)


def _judge_counters(report: HealthReport, c: Mapping[str, int], settings: Settings) -> None:
    requests = c.get("requests", 0)
    lookups = c.get("cache_hit", 0) + c.get("cache_miss", 0)
    attempts = c.get("condensations", 0) + c.get("condensation_failures", 0)
    calls = max(c.get("summarizer_calls", 0), c.get("summarizer_failures", 0))  # a failure may precede a call
    hit_ratio = c.get("cache_hit", 0) / lookups if lookups else None
    success = c.get("condensations", 0) / attempts if attempts else None
    summarizer_failure = c.get("summarizer_failures", 0) / calls if calls else None
    rejection = c.get("rejected", 0) / (requests + c.get("rejected", 0)) if requests or c.get("rejected") else None
    p95 = percentile_ms(c, 0.95)
    report.add(
        "counters",
        Status.HEALTHY,
        requests=requests,
        cache_hit_ratio=_round(hit_ratio),
        condensation_success_rate=_round(success),
        summarizer_failure_rate=_round(summarizer_failure),
        rejection_rate=_round(rejection),
        invalid_requests=c.get("invalid", 0),
        internal_errors=c.get("errors", 0),
        avg_processing_ms=round(c.get("processing_ms_sum", 0) / requests, 1) if requests else None,
        p95_processing_ms_at_most=p95,
    )
    budget = settings.max_context_processing_time
    errors = c.get("errors", 0)
    if hit_ratio is not None and lookups >= MIN_SAMPLES and hit_ratio < LOW_CACHE_HIT_RATIO:
        report.problem(
            "counters",
            Status.DEGRADED,
            f"summary cache hit ratio {hit_ratio:.0%} over {lookups} lookups",
            "Check that every replica uses the same REDIS_URL and CONTEXT_CACHE_SCOPE; raise "
            "CONDENSATION_CACHE_TTL if conversations pause longer than it",
        )
    if success is not None and attempts >= MIN_SAMPLES and success < LOW_CONDENSATION_SUCCESS:
        report.problem(
            "counters",
            Status.DEGRADED,
            f"condensation success rate {success:.0%} over {attempts} attempts",
            "Requests were truncated instead: check the summariser and CONDENSATION_QUALITY_THRESHOLD",
        )
    if summarizer_failure is not None and calls >= MIN_SAMPLES and summarizer_failure > HIGH_SUMMARIZER_FAILURES:
        report.problem(
            "counters",
            Status.DEGRADED,
            f"{summarizer_failure:.0%} of {calls} summariser calls failed",
            "Check the summariser model's key, quota and CONDENSATION_TIMEOUT in the proxy log",
        )
    if rejection is not None and requests >= MIN_SAMPLES and rejection > HIGH_REJECTION_RATE:
        report.problem(
            "counters",
            Status.DEGRADED,
            f"{rejection:.0%} of requests rejected as too large for their model",
            "Clients send more than the window holds even after truncation: route them to a larger model",
        )
    if p95 is not None and requests >= MIN_SAMPLES and p95 > BUDGET_SHARE * budget:
        report.problem(
            "counters",
            Status.DEGRADED,
            f"p95 processing time up to {p95:.0f} ms against a {budget} ms budget",
            "Raise MAX_CONTEXT_PROCESSING_TIME or use a faster summariser model",
        )
    if errors:
        report.problem(
            "counters",
            Status.DEGRADED,
            f"{errors} internal faults (those requests passed through unchanged)",
            "Look for 'litellm-ctx-hook failed on request' in the proxy log and report the traceback",
        )


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
