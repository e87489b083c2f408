"""What the plugin logs: a malformed request is one WARNING line (rate-limited per route and
reason), an internal fault one ERROR line with its frames but not its message, and
``CONTEXT_LOG_FORMAT=json`` writes one JSON object per line."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest
from prometheus_client import REGISTRY
from support import settings

from litellm_ctx_hook.errors import ConfigurationError, InvalidRequestError
from litellm_ctx_hook.proxy.hook import ContextHook
from litellm_ctx_hook.runtime.logs import LOGGER_NAME, InvalidRequestLog, JsonFormatter, configure, log_fault

SECRET = "zebra-quartz-7731 the customer's card is 4111 1111 1111 1111"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith(LOGGER_NAME)]


def test_one_warning_per_route_and_reason_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    log = InvalidRequestLog(logging.getLogger(LOGGER_NAME), interval_s=60, clock=clock)
    bad_role = InvalidRequestError("messages[0].role 'wizard' is not one of ...", reason="unknown_role")
    with caplog.at_level(logging.DEBUG, logger=LOGGER_NAME):
        log.log("req-1", "openai", bad_role)
        log.log("req-2", "openai", bad_role)
        log.log("req-3", "openai", bad_role)
        log.log("req-4", "anthropic", bad_role)  # another route: its own warning
        clock.now += 61
        log.log("req-5", "openai", bad_role)
    levels = [(r.levelno, r.request_id) for r in _records(caplog)]  # type: ignore[attr-defined]
    assert levels == [
        (logging.WARNING, "req-1"),
        (logging.DEBUG, "req-2"),
        (logging.DEBUG, "req-3"),
        (logging.WARNING, "req-4"),
        (logging.WARNING, "req-5"),
    ]
    last = _records(caplog)[-1].getMessage()
    assert "req-5" in last and "unknown_role" in last and "2 more of this kind" in last
    assert all(r.exc_info is None for r in _records(caplog))


def _fail(message: str) -> None:
    raise KeyError(message)


def test_a_fault_is_logged_with_its_frames_but_not_its_message(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger(LOGGER_NAME)
    with caplog.at_level(logging.DEBUG, logger=LOGGER_NAME):
        try:
            _fail(SECRET)
        except KeyError as exc:
            log_fault(logger, "it failed on request r-9", exc, request_id="r-9")
    error, debug = _records(caplog)
    assert error.levelno == logging.ERROR and debug.levelno == logging.DEBUG
    text = error.getMessage()
    assert "r-9" in text and "Traceback (most recent call last)" in text
    assert "in _fail" in text and "test_logs.py" in text and "KeyError" in text  # where and what
    assert SECRET not in text and "zebra" not in text
    assert "zebra" in debug.getMessage()  # the message is there for whoever turns DEBUG on


class ExplodingEngine:
    """An engine whose management fails with content in its exception's message."""

    cache = None  # no shared cache

    def resolve(self, model: str, router: Any) -> Any:
        raise RuntimeError(SECRET)

    def scope_for(self, team_id: str | None, api_key: str | None) -> str:
        return "global"


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def test_an_internal_fault_is_an_error_counted_apart_from_invalid_requests(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hook = ContextHook(settings(), engine=ExplodingEngine())  # type: ignore[arg-type]
    errors = _sample("litellm_ctx_errors_total")
    data = {"model": "gpt-4o", "messages": [{"role": "user", "content": SECRET}], "litellm_call_id": "call-77"}
    with caplog.at_level(logging.DEBUG, logger=LOGGER_NAME):
        out = await hook.async_pre_call_hook(None, None, data, "acompletion")
    assert out is data
    assert _sample("litellm_ctx_errors_total") == errors + 1
    above_debug = [r for r in _records(caplog) if r.levelno > logging.DEBUG]
    assert [r.levelno for r in above_debug] == [logging.ERROR]
    assert "call-77" in above_debug[0].getMessage() and "RuntimeError" in above_debug[0].getMessage()
    assert all("zebra" not in r.getMessage() for r in above_debug)


async def test_a_malformed_request_line_never_quotes_the_conversation(caplog: pytest.LogCaptureFixture) -> None:
    hook = ContextHook(settings())
    bodies = [
        {"model": "gpt-4o", "messages": [{"role": SECRET, "content": SECRET}]},
        {"model": "gpt-4o", "messages": [{"role": "user", "content": 5}, {"role": "user", "content": SECRET}]},
        {"model": "gpt-4o", "input": [{"type": "message", "role": "user", "content": {"text": SECRET}}]},
    ]
    with caplog.at_level(logging.DEBUG, logger=LOGGER_NAME):
        await hook.async_pre_call_hook(None, None, bodies[0], "acompletion")
        await hook.async_pre_call_hook(None, None, bodies[1], "acompletion")
        await hook.async_pre_call_hook(None, None, bodies[2], "aresponses")
    lines = [r.getMessage() for r in _records(caplog) if r.levelno >= logging.INFO]
    assert len(lines) == 3
    assert all("zebra" not in line for line in lines)
    assert f"a string of {len(SECRET)} characters" in lines[0]  # what was wrong with the role, not the role


def test_json_format(capsys: pytest.CaptureFixture[str]) -> None:
    logger = logging.getLogger(LOGGER_NAME)
    configure(settings(context_log_format="json"))
    try:
        handler = next(h for h in logger.handlers if isinstance(h.formatter, JsonFormatter))
        stream = io.StringIO()
        handler.setStream(stream)  # type: ignore[attr-defined]
        logger.warning("malformed request %s", "r-1", extra={"request_id": "r-1", "route": "openai", "reason": "x"})
        try:
            _fail(SECRET)
        except KeyError as exc:
            log_fault(logger, "boom", exc)
        first, second = (json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{"))
        assert first["level"] == "WARNING" and first["message"] == "malformed request r-1"
        assert (first["request_id"], first["route"], first["reason"]) == ("r-1", "openai", "x")
        assert first["time"].endswith("Z") and first["logger"] == LOGGER_NAME
        assert second["level"] == "ERROR" and second["fault"] == "KeyError" and "in _fail" in second["message"]
        assert "zebra" not in stream.getvalue()
    finally:
        configure(settings())
    assert not [h for h in logger.handlers if isinstance(h.formatter, JsonFormatter)]
    assert logger.propagate


def test_a_bad_log_format_names_the_variable() -> None:
    with pytest.raises(ConfigurationError, match="CONTEXT_LOG_FORMAT"):
        settings(context_log_format="xml")
