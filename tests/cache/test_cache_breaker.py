"""The circuit breaker state machine on a fake clock."""

from __future__ import annotations

import pytest
from cache_support import FakeClock

from litellm_ctx_hook.cache.breaker import BreakerEvent, BreakerState, CircuitBreaker


def opened(clock: FakeClock) -> CircuitBreaker:
    b = CircuitBreaker(clock=clock)
    for _ in range(3):
        assert b.allow()
        event = b.record_failure()
    assert event is BreakerEvent.OPENED
    return b


def test_opens_after_three_consecutive_failures_only() -> None:
    b = CircuitBreaker(clock=FakeClock())
    assert b.record_failure() is None
    assert b.record_failure() is None
    assert b.record_success() is None  # resets the run
    assert b.record_failure() is None
    assert b.record_failure() is None
    assert b.state is BreakerState.CLOSED
    assert b.record_failure() is BreakerEvent.OPENED
    assert b.state is BreakerState.OPEN
    assert b.opens == 1


def test_open_refuses_calls_for_the_back_off_then_lets_one_probe_through() -> None:
    clock = FakeClock()
    b = opened(clock)
    assert not b.allow()
    clock.advance(0.99)
    assert not b.allow()
    clock.advance(0.01)
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow()  # the probe
    assert not b.allow()  # only one
    assert b.record_success() is BreakerEvent.RECOVERED
    assert b.state is BreakerState.CLOSED
    assert b.allow()


def test_failed_probes_double_the_back_off_up_to_the_cap() -> None:
    clock = FakeClock()
    b = opened(clock)
    waits = []
    for _ in range(8):
        waits.append(b.backoff_s)
        clock.advance(b.backoff_s)
        assert b.allow()
        assert b.record_failure() is BreakerEvent.REOPENED
        assert not b.allow()
    assert waits == [1, 2, 4, 8, 16, 30, 30, 30]
    assert b.opens == 1  # one outage, however many probes failed


def test_recovery_resets_the_back_off_and_counts_a_new_outage() -> None:
    clock = FakeClock()
    b = opened(clock)
    clock.advance(1)
    b.allow()
    b.record_failure()  # back-off 2
    clock.advance(2)
    b.allow()
    assert b.record_success() is BreakerEvent.RECOVERED
    assert b.last_outage_s == pytest.approx(3)
    for _ in range(3):
        b.record_failure()
    assert b.backoff_s == 1
    assert b.opens == 2


def test_failures_reported_while_open_do_not_extend_the_outage() -> None:
    clock = FakeClock()
    b = opened(clock)
    assert b.record_failure() is None  # a call started before the breaker opened
    clock.advance(1)
    assert b.allow()


def test_a_cancelled_probe_lets_the_next_caller_probe() -> None:
    clock = FakeClock()
    b = opened(clock)
    clock.advance(1)
    assert b.allow()
    b.abandon_probe()
    assert b.allow()


def test_a_probe_that_never_reports_is_given_up_after_its_timeout() -> None:
    clock = FakeClock()
    b = opened(clock)
    clock.advance(1)
    assert b.allow()
    clock.advance(4.9)
    assert not b.allow()
    clock.advance(0.1)
    assert b.allow()


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError, match="threshold"):
        CircuitBreaker(threshold=0)
    with pytest.raises(ValueError, match="backoff"):
        CircuitBreaker(base_backoff_s=5, max_backoff_s=1)
