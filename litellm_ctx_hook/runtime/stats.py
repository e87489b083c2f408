"""Process-local performance statistics of one engine (thread-safe counters)."""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

_WINDOW = 1000  # processing times kept for averages and p95


class EngineStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests = 0
        self.by_risk: dict[str, int] = {}
        self.by_strategy: dict[str, int] = {}
        self.condensations = 0
        self.condensation_failures = 0
        self.summarizer_calls = 0
        self.summarizer_failures = 0
        self.fallbacks = 0
        self.speculative_condensations = 0
        self.summaries_in_background = 0  # requests served before the model's summary was ready
        self.background_skipped = 0  # model summaries not started: too many under way
        self.model_waits_skipped = 0  # requests that did not wait for a model known to be too slow
        self.summaries_mended = 0  # model summaries completed with the facts they missed
        self.tokens_saved_total = 0
        self.managed = 0
        self.analysis_hits = 0
        self.analysis_misses = 0
        self.turn_memo_hits = 0  # requests handled from their conversation's last turn
        self._times_ms: deque[float] = deque(maxlen=_WINDOW)

    def bump(self, name: str, amount: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + amount)

    def record(self, risk: str, strategy: str, tokens_saved: int, elapsed_ms: float) -> None:
        with self._lock:
            self.requests += 1
            self.by_risk[risk] = self.by_risk.get(risk, 0) + 1
            self.by_strategy[strategy] = self.by_strategy.get(strategy, 0) + 1
            if tokens_saved > 0:
                self.managed += 1
                self.tokens_saved_total += tokens_saved
            self._times_ms.append(elapsed_ms)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            times = sorted(self._times_ms)
            attempts = self.condensations + self.condensation_failures
            return {
                "requests": self.requests,
                "requests_by_risk": dict(self.by_risk),
                "actions_by_strategy": dict(self.by_strategy),
                "condensations": self.condensations,
                "condensation_success_rate": self.condensations / attempts if attempts else 1.0,
                "summarizer_calls": self.summarizer_calls,
                "summarizer_failures": self.summarizer_failures,
                "fallbacks": self.fallbacks,
                "speculative_condensations": self.speculative_condensations,
                "summaries_in_background": self.summaries_in_background,
                "background_skipped": self.background_skipped,
                "model_waits_skipped": self.model_waits_skipped,
                "summaries_mended": self.summaries_mended,
                "avg_tokens_saved": self.tokens_saved_total / self.managed if self.managed else 0.0,
                "avg_processing_time_ms": sum(times) / len(times) if times else 0.0,
                "p95_processing_time_ms": times[int(0.95 * (len(times) - 1))] if times else 0.0,
                "analysis_cache_hits": self.analysis_hits,
                "analysis_cache_misses": self.analysis_misses,
            }

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]
