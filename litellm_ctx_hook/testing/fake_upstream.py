"""A fake OpenAI/Anthropic-compatible upstream: lets tests see exactly what the proxy sent upstream.

Standard library only (``http.server`` in a background thread). It answers

* ``POST [/v1]/chat/completions`` — OpenAI chat completion (``stream: true`` → SSE chunks, a usage
  chunk when ``stream_options.include_usage``, then ``data: [DONE]``);
* ``POST [/v1]/messages`` — Anthropic Messages (``stream: true`` → the Anthropic event sequence);
* ``POST [/v1]/responses`` — OpenAI Responses (``stream: true`` → the Responses event sequence);
* ``GET [/v1]/models`` — a one-model list,

and records every request (path, lower-cased headers, parsed JSON body), optionally appending it as
one JSON line to ``record_file`` so a test can read what a server in another process received.

Replies are deterministic (:mod:`~litellm_ctx_hook.testing.fake_replies`, whose names are also
importable from here). A summariser call (the system part or the first message contains
``<conversation_transcript>``) gets ``Summary: `` followed by up to 20 distinct identifier-like
tokens of the transcript; anything else gets ``ok: <n> messages received``.

``delay_s`` (sleep before answering) and ``fail_status`` (answer with that HTTP error and a
provider-shaped JSON error body) can be set in the constructor or at run time.

Run as a process::

    python -m litellm_ctx_hook.testing.fake_upstream --port 8099 --record /tmp/upstream.jsonl
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import socket
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from .fake_replies import (
    MAX_SUMMARY_TOKENS,
    TRANSCRIPT_CLOSE,
    TRANSCRIPT_OPEN,
    anthropic_message,
    anthropic_stream,
    chat_completion,
    chat_stream,
    error_body,
    is_summarizer_call,
    prompt_tokens_for,
    reply_text_for,
    response_object,
    responses_stream,
    transcript_identifiers,
)

__all__ = [
    "ENDPOINTS",
    "MAX_SUMMARY_TOKENS",
    "TRANSCRIPT_CLOSE",
    "TRANSCRIPT_OPEN",
    "FakeUpstream",
    "RecordedRequest",
    "free_port",
    "is_summarizer_call",
    "main",
    "read_record_file",
    "reply_text_for",
    "transcript_identifiers",
]

ENDPOINTS = ("/chat/completions", "/messages", "/responses", "/models")


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request the fake upstream received."""

    method: str
    path: str  # as sent, without the query string (e.g. "/v1/chat/completions")
    headers: dict[str, str]  # lower-cased names
    body: Any  # parsed JSON, or None when the body was empty or not JSON
    received_at: float = field(default=0.0, compare=False)

    @property
    def endpoint(self) -> str:
        """The path without a leading ``/v1`` (``/chat/completions``, ``/messages``, ``/responses``...)."""
        return self.path[3:] if self.path.startswith("/v1/") else self.path

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "headers": self.headers,
            "body": self.body,
            "received_at": self.received_at,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> RecordedRequest:
        return cls(
            method=str(obj["method"]),
            path=str(obj["path"]),
            headers={str(k): str(v) for k, v in dict(obj["headers"]).items()},
            body=obj.get("body"),
            received_at=float(obj.get("received_at", 0.0)),
        )


def read_record_file(path: Path) -> list[RecordedRequest]:
    """The requests recorded in a ``record_file`` (missing file → none)."""
    if not path.exists():
        return []
    text = path.read_text(encoding="utf-8")
    lines = text[: text.rfind("\n") + 1].splitlines()  # a line being written right now is not whole yet
    return [RecordedRequest.from_json(json.loads(line)) for line in lines if line.strip()]


# --- the server -----------------------------------------------------------------------------------


class TrackingServer(ThreadingHTTPServer):
    """A threading HTTP server that tracks its open connections, so that stopping it also ends
    kept-alive ones (:meth:`close_connections`); the fake upstreams of this package serve on it."""

    daemon_threads = True
    allow_reuse_address = True

    def server_activate(self) -> None:
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().server_activate()

    def get_request(self) -> tuple[socket.socket, Any]:
        conn, addr = super().get_request()
        with self._connections_lock:
            self._connections.add(conn)
        return conn, addr

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


def send_events(handler: BaseHTTPRequestHandler, events: Iterator[bytes]) -> None:
    """Answer with server-sent events, delimited by closing the connection (no Content-Length);
    a client that went away ends it quietly."""
    handler.close_connection = True
    try:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        handler.send_header("Connection", "close")
        handler.end_headers()
        for event in events:
            handler.wfile.write(event)
            handler.wfile.flush()
    except OSError:
        pass


class _Server(TrackingServer):
    upstream: FakeUpstream


class UpstreamHandler(BaseHTTPRequestHandler):
    """The fake's HTTP handler; :meth:`FakeUpstream.start` serves with this module's ``UpstreamHandler``
    (``bench/fault_upstream.py`` subclasses it and puts its subclass there to add routes)."""

    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        record = self.server.upstream._record("GET", path, dict(self.headers.items()), None)
        if record.endpoint == "/models":
            self._send_json(
                200,
                {"object": "list", "data": [{"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake"}]},
            )
        else:
            self._send_json(404, error_body(record.endpoint, 404, f"no route GET {path}"))

    def do_POST(self) -> None:
        upstream = self.server.upstream
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        record = upstream._record("POST", path, dict(self.headers.items()), body)
        endpoint = record.endpoint
        if upstream.delay_s > 0 and upstream._stopping.wait(upstream.delay_s):
            self.close_connection = True
            return  # stopped while sleeping: no answer
        if endpoint not in ENDPOINTS or endpoint == "/models":
            self._send_json(404, error_body(endpoint, 404, f"no route POST {path}"))
            return
        if upstream.fail_status:
            status = upstream.fail_status
            self._send_json(status, error_body(endpoint, status, f"fake upstream failure {status}"))
            return
        if not isinstance(body, dict):
            self._send_json(400, error_body(endpoint, 400, "request body must be a JSON object"))
            return
        text = upstream.reply_text if upstream.reply_text is not None else reply_text_for(body)
        prompt_tokens = prompt_tokens_for(len(raw))
        stream = body.get("stream") is True
        if endpoint == "/chat/completions":
            if stream:
                self._send_stream(chat_stream(body, text, prompt_tokens))
            else:
                self._send_json(200, chat_completion(body, text, prompt_tokens))
        elif endpoint == "/messages":
            if stream:
                self._send_stream(anthropic_stream(body, text, prompt_tokens))
            else:
                self._send_json(200, anthropic_message(body, text, prompt_tokens))
        elif stream:
            self._send_stream(responses_stream(body, text, prompt_tokens))
        else:
            self._send_json(200, response_object(body, text, prompt_tokens))

    def _send_json(self, status: int, obj: dict[str, Any]) -> None:
        payload = json.dumps(obj).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("x-request-id", f"req_{uuid.uuid4().hex[:16]}")
            self.end_headers()
            self.wfile.write(payload)
        except OSError:  # the client went away (e.g. it timed out)
            self.close_connection = True

    def _send_stream(self, events: Iterator[bytes]) -> None:
        send_events(self, events)


class FakeUpstream:
    """The fake upstream server; ``start()`` returns its base URL (no ``/v1``)."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        record_file: Path | None = None,
        delay_s: float = 0.0,
        fail_status: int | None = None,
        reply_text: str | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.record_file = record_file
        self.delay_s = delay_s  # settable at run time
        self.fail_status = fail_status  # settable at run time; None or 0 = answer normally
        self.reply_text = reply_text  # settable at run time; None = the deterministic reply
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeUpstream is not started: call start() first")
        return f"http://{self.host}:{self._server.server_address[1]}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the requests received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, endpoint: str) -> list[RecordedRequest]:
        """The requests whose path, without ``/v1``, is ``endpoint`` (e.g. ``"/chat/completions"``)."""
        return [r for r in self.requests if r.endpoint == endpoint]

    def clear(self) -> None:
        with self._lock:
            self._requests.clear()

    def start(self) -> str:
        if self._server is not None:
            return self.url
        self._stopping.clear()
        server = _Server((self.host, self.port), UpstreamHandler)
        server.upstream = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="fake-upstream", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeUpstream:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _record(self, method: str, path: str, headers: dict[str, str], body: Any) -> RecordedRequest:
        record = RecordedRequest(method, path, {k.lower(): v for k, v in headers.items()}, body, time.time())
        with self._lock:
            self._requests.append(record)
            if self.record_file is not None:
                with self.record_file.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(record.to_json()) + "\n")
        return record


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fake OpenAI/Anthropic-compatible upstream for tests and demos.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port")
    parser.add_argument("--record", type=Path, default=None, help="append each request as a JSON line here")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait before each answer")
    parser.add_argument("--fail-status", type=int, default=None, help="answer every call with this HTTP error")
    args = parser.parse_args(argv)
    upstream = FakeUpstream(
        host=args.host, port=args.port, record_file=args.record, delay_s=args.delay, fail_status=args.fail_status
    )
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(upstream.start(), flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        upstream.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
