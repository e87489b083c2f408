"""A circuit breaker for the Redis tier (pure: no I/O, injectable clock).

* **closed** — calls go through; ``threshold`` consecutive failures open it.
* **open** — calls are refused for the current back-off (``base_backoff_s``, doubling after each
  failed probe up to ``max_backoff_s``).
* **half_open** — the back-off has elapsed: exactly one probe call is let through. Its success
  closes the breaker (back-off reset); its failure re-opens it with the doubled back-off. A probe
  that never reports (its task was cancelled) is given up after ``probe_timeout_s``.

The breaker returns :class:`BreakerEvent` values instead of logging so that the caller can log
once per outage (``OPENED``) and once per recovery (``RECOVERED``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class BreakerEvent(StrEnum):
    OPENED = "opened"  # an outage starts (closed → open)
    REOPENED = "reopened"  # a probe failed (half_open → open, longer back-off)
    RECOVERED = "recovered"  # a probe succeeded (→ closed)


class CircuitBreaker:
    def __init__(
        self,
        threshold: int = 3,
        base_backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        probe_timeout_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1 or base_backoff_s <= 0 or max_backoff_s < base_backoff_s:
            raise ValueError("need threshold >= 1 and 0 < base_backoff_s <= max_backoff_s")
        self.threshold = threshold
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self.probe_timeout_s = probe_timeout_s
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0  # consecutive failures while closed
        self._backoff_s = base_backoff_s  # the current (or next) open period
        self._open_until = 0.0
        self._probe_started: float | None = None
        self._outage_started = 0.0
        self.opens = 0  # outages so far (closed → open transitions)
        self.last_outage_s = 0.0  # length of the last outage that ended

    @property
    def state(self) -> BreakerState:
        """The state as of now: an open breaker whose back-off elapsed reports ``half_open``."""
        if self._state is BreakerState.OPEN and self._clock() >= self._open_until:
            return BreakerState.HALF_OPEN
        return self._state

    @property
    def backoff_s(self) -> float:
        return self._backoff_s

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def outage_seconds(self) -> float:
        """Seconds since the current outage started (0 when closed)."""
        return 0.0 if self._state is BreakerState.CLOSED else self._clock() - self._outage_started

    def allow(self) -> bool:
        """May a call go to Redis now? In half-open state only the first caller gets ``True``."""
        if self._state is BreakerState.CLOSED:
            return True
        now = self._clock()
        if self._state is BreakerState.OPEN:
            if now < self._open_until:
                return False
            self._state = BreakerState.HALF_OPEN
            self._probe_started = now
            return True
        # half open: one probe in flight
        if self._probe_started is None or now - self._probe_started >= self.probe_timeout_s:
            self._probe_started = now  # the previous probe never reported: let another one through
            return True
        return False

    def record_success(self) -> BreakerEvent | None:
        if self._state is BreakerState.CLOSED:
            self._failures = 0
            return None
        self.last_outage_s = self._clock() - self._outage_started
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._backoff_s = self.base_backoff_s
        self._probe_started = None
        return BreakerEvent.RECOVERED

    def record_failure(self) -> BreakerEvent | None:
        now = self._clock()
        if self._state is BreakerState.CLOSED:
            self._failures += 1
            if self._failures < self.threshold:
                return None
            self._state = BreakerState.OPEN
            self._backoff_s = self.base_backoff_s
            self._open_until = now + self._backoff_s
            self._outage_started = now
            self.opens += 1
            return BreakerEvent.OPENED
        if self._state is BreakerState.HALF_OPEN:
            self._backoff_s = min(self._backoff_s * 2, self.max_backoff_s)
            self._state = BreakerState.OPEN
            self._open_until = now + self._backoff_s
            self._probe_started = None
            return BreakerEvent.REOPENED
        return None  # a call started before the breaker opened: the outage is already known

    def abandon_probe(self) -> None:
        """The probe was cancelled before it could report: let the next caller probe."""
        if self._state is BreakerState.HALF_OPEN:
            self._probe_started = None
            self._state = BreakerState.OPEN
            self._open_until = self._clock()
