"""What the plugin logs, and how: a client's malformed request is one WARNING line, an internal
fault one ERROR line with its stack trace, and no line above DEBUG quotes a conversation.

* A malformed request (:class:`~litellm_ctx_hook.errors.InvalidRequestError`) is the client's
  doing: one WARNING line with the request id, the route and what is wrong, no stack trace; at
  most one per route and reason every :data:`INVALID_WARNING_INTERVAL_S` seconds (a misbehaving
  client must not flood the log), the others at DEBUG, the next WARNING saying how many there were.
* An internal fault is logged at ERROR with its stack trace, but the exception's message (which
  may quote the data being processed) is left out of it: the frames and the exception's type
  locate the fault; the full message is logged at DEBUG.
* ``CONTEXT_LOG_FORMAT=json`` writes the plugin's records as one JSON object per line.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from ..errors import InvalidRequestError
from ..settings import LogFormat, Settings

LOGGER_NAME = "litellm_ctx_hook"
INVALID_WARNING_INTERVAL_S = 60.0
_FIELDS = ("request_id", "route", "reason", "fault")  # ``extra`` fields the JSON format carries


class InvalidRequestLog:
    """Logs malformed requests: a WARNING per route and reason per interval, DEBUG in between."""

    def __init__(
        self,
        logger: logging.Logger,
        interval_s: float = INVALID_WARNING_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = logger
        self._interval = interval_s
        self._clock = clock
        self._last: dict[tuple[str, str], float] = {}  # bounded: routes x reasons
        self._quiet: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def log(self, request_id: str, route: str, exc: InvalidRequestError) -> None:
        key = (route, exc.reason)
        now = self._clock()
        with self._lock:
            last = self._last.get(key)
            loud = last is None or now - last >= self._interval
            if loud:
                self._last[key] = now
                quiet = self._quiet.pop(key, 0)
            else:
                self._quiet[key] = self._quiet.get(key, 0) + 1
        extra = {"request_id": request_id, "route": route, "reason": exc.reason}
        if not loud:
            self._log.debug(
                "malformed request %s on %s passed through unchanged: %s", request_id, route, exc, extra=extra
            )
            return
        more = f" ({quiet} more of this kind since the last warning, at DEBUG)" if quiet else ""
        self._log.warning(
            "malformed request %s on %s passed through unchanged (%s): %s%s",
            request_id,
            route,
            exc.reason,
            exc,
            more,
            extra=extra,
        )


def log_fault(logger: logging.Logger, message: str, exc: BaseException, **extra: Any) -> None:
    """An internal fault: ERROR with the stack trace but without the exception's message."""
    frames = "".join(traceback.format_tb(exc.__traceback__))
    cause = type(exc).__qualname__
    logger.error(
        "%s: %s (message at DEBUG)\nTraceback (most recent call last):\n%s%s",
        message,
        cause,
        frames,
        cause,
        extra={**extra, "fault": cause},
    )
    logger.debug("%s: %s: %s", message, cause, exc, extra=extra)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message and the plugin's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                out[name] = value
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False, default=str)


JsonFormatter.converter = time.gmtime

_HANDLER_NAME = "litellm_ctx_hook.json"


def configure(settings: Settings) -> None:
    """Apply ``CONTEXT_LOG_FORMAT`` to the plugin's logger (idempotent)."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in [h for h in logger.handlers if h.get_name() == _HANDLER_NAME]:
        logger.removeHandler(handler)
    if settings.context_log_format is LogFormat.JSON:
        handler = logging.StreamHandler(sys.stderr)
        handler.set_name(_HANDLER_NAME)
        handler.setFormatter(JsonFormatter())
        logger.addHandler(handler)
        logger.propagate = False
        if logger.level == logging.NOTSET:
            logger.setLevel(logging.INFO)
    else:
        logger.propagate = True
