"""A fake OpenAI/Anthropic-compatible upstream: lets tests see exactly what the proxy sent upstream.

Standard library only (``http.server`` in a background thread). It answers

* ``POST [/v1]/chat/completions`` — OpenAI chat completion (``stream: true`` → SSE chunks, a usage
  chunk when ``stream_options.include_usage``, then ``data: [DONE]``);
* ``POST [/v1]/messages`` — Anthropic Messages (``stream: true`` → the Anthropic event sequence);
* ``POST [/v1]/responses`` — OpenAI Responses (``stream: true`` → the Responses event sequence);
* ``GET [/v1]/models`` — a one-model list,

and records every request (path, lower-cased headers, parsed JSON body), optionally appending it as
one JSON line to ``record_file`` so a test can read what a server in another process received.

Replies are deterministic. A summariser call (the system part or the first message contains
``<conversation_transcript>``) gets ``Summary: `` followed by up to 20 distinct identifier-like
tokens of the transcript (tokens containing a digit, ``/`` or ``_``); anything else gets
``ok: <n> messages received``. Usage: prompt tokens ≈ request body bytes / 4.

``delay_s`` (sleep before answering) and ``fail_status`` (answer with that HTTP error and a
provider-shaped JSON error body) can be set in the constructor or at run time.

Run as a process::

    python -m litellm_ctx_hook.demo.fake_upstream --port 8099 --record /tmp/upstream.jsonl
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
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

TRANSCRIPT_OPEN = "<conversation_transcript>"
TRANSCRIPT_CLOSE = "</conversation_transcript>"
MAX_SUMMARY_TOKENS = 20
ENDPOINTS = ("/chat/completions", "/messages", "/responses", "/models")

_TOKEN_STRIP = "\"'`.,;:!?()[]{}<>*"
_IDENTIFIER_HINT = re.compile(r"[0-9/_]")


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


# --- reading the request body -------------------------------------------------------------------


def _text_of(value: Any) -> str:
    """All the text in a message, content part list, block or plain string (any of the three formats)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(t for t in (_text_of(v) for v in value) if t)
    if isinstance(value, dict):
        parts = [_text_of(value[k]) for k in ("text", "content", "output") if k in value]
        return "\n".join(t for t in parts if t)
    return ""


def _conversation(body: dict[str, Any]) -> tuple[str, list[Any]]:
    """(system text, non-system messages) of a chat, Anthropic or Responses body."""
    system_parts = [_text_of(body.get("system")), _text_of(body.get("instructions"))]
    raw = body.get("messages", body.get("input"))
    items: list[Any] = [raw] if isinstance(raw, str) else list(raw) if isinstance(raw, list) else []
    messages: list[Any] = []
    for item in items:
        if isinstance(item, dict) and item.get("role") in ("system", "developer"):
            system_parts.append(_text_of(item))
        else:
            messages.append(item)
    return "\n".join(p for p in system_parts if p), messages


def is_summarizer_call(body: Any) -> bool:
    """The system part or the first message carries the transcript marker."""
    if not isinstance(body, dict):
        return False
    system, messages = _conversation(body)
    head = system + "\n" + (_text_of(messages[0]) if messages else "")
    return TRANSCRIPT_OPEN in head


def transcript_identifiers(text: str, limit: int = MAX_SUMMARY_TOKENS) -> list[str]:
    """Up to ``limit`` distinct tokens of the fenced transcript that contain a digit, ``/`` or ``_``.

    The transcript is the text after the last ``<conversation_transcript>`` up to the next closing
    marker (the whole text when there is no marker).
    """
    start = text.rfind(TRANSCRIPT_OPEN)
    if start >= 0:
        text = text[start + len(TRANSCRIPT_OPEN) :]
        end = text.find(TRANSCRIPT_CLOSE)
        text = text if end < 0 else text[:end]
    seen: list[str] = []
    for raw in text.split():
        token = raw.strip(_TOKEN_STRIP)
        if token and _IDENTIFIER_HINT.search(token) and token not in seen:
            seen.append(token)
            if len(seen) >= limit:
                break
    return seen


def reply_text_for(body: Any) -> str:
    """The deterministic reply to a request body."""
    if not isinstance(body, dict):
        return "ok: 0 messages received"
    system, messages = _conversation(body)
    if is_summarizer_call(body):
        conversation = "\n".join(_text_of(m) for m in messages)
        source = conversation if TRANSCRIPT_OPEN in conversation else system + "\n" + conversation
        return "Summary: " + " ".join(transcript_identifiers(source))
    return f"ok: {len(messages)} messages received"


def _tokens(n_chars: int) -> int:
    return max(1, n_chars // 4)


# --- response bodies ------------------------------------------------------------------------------


def _model(body: Any, default: str) -> str:
    return str(body.get("model") or default) if isinstance(body, dict) else default


def _chat_completion(body: Any, text: str, prompt_tokens: int) -> dict[str, Any]:
    completion_tokens = _tokens(len(text))
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": _model(body, "fake-model"),
        "system_fingerprint": "fp_fake",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def _chat_stream(body: dict[str, Any], text: str, prompt_tokens: int) -> Iterator[bytes]:
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": _model(body, "fake-model"),
        "system_fingerprint": "fp_fake",
    }

    def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _sse({**base, "choices": [choice]})

    yield chunk({"role": "assistant", "content": ""}, None)
    for piece in _pieces(text):
        yield chunk({"content": piece}, None)
    yield chunk({}, "stop")
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage"):
        completion_tokens = _tokens(len(text))
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        yield _sse({**base, "choices": [], "usage": usage})
    yield b"data: [DONE]\n\n"


def _anthropic_message(body: Any, text: str, prompt_tokens: int) -> dict[str, Any]:
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": _model(body, "claude-fake"),
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": prompt_tokens, "output_tokens": _tokens(len(text))},
    }


def _anthropic_stream(body: dict[str, Any], text: str, prompt_tokens: int) -> Iterator[bytes]:
    message = _anthropic_message(body, "", prompt_tokens)
    message.update(content=[], stop_reason=None, usage={"input_tokens": prompt_tokens, "output_tokens": 1})
    yield _sse({"type": "message_start", "message": message}, event="message_start")
    block_start = {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}
    yield _sse(block_start, event="content_block_start")
    for piece in _pieces(text):
        delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}}
        yield _sse(delta, event="content_block_delta")
    yield _sse({"type": "content_block_stop", "index": 0}, event="content_block_stop")
    message_delta = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn", "stop_sequence": None},
        "usage": {"output_tokens": _tokens(len(text))},
    }
    yield _sse(message_delta, event="message_delta")
    yield _sse({"type": "message_stop"}, event="message_stop")


def _response_object(body: Any, text: str, prompt_tokens: int, *, status: str = "completed") -> dict[str, Any]:
    output_tokens = _tokens(len(text))
    done = status == "completed"
    message = {
        "type": "message",
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "status": "completed",
        "role": "assistant",
        "content": [{"type": "output_text", "text": text, "annotations": []}],
    }
    return {
        "id": f"resp_{uuid.uuid4().hex[:24]}",
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "model": _model(body, "fake-model"),
        "output": [message] if done else [],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions") if isinstance(body, dict) else None,
        "metadata": {},
        "temperature": 1.0,
        "top_p": 1.0,
        "text": {"format": {"type": "text"}},
        "usage": {
            "input_tokens": prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output_tokens,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": prompt_tokens + output_tokens,
        }
        if done
        else None,
    }


def _responses_stream(body: dict[str, Any], text: str, prompt_tokens: int) -> Iterator[bytes]:
    final = _response_object(body, text, prompt_tokens)
    pending = {**_response_object(body, "", prompt_tokens, status="in_progress"), "id": final["id"]}
    item = final["output"][0]
    item_id = item["id"]
    empty_part = {"type": "output_text", "text": "", "annotations": []}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": pending},
        {"type": "response.in_progress", "response": pending},
        {
            "type": "response.output_item.added",
            "output_index": 0,
            "item": {**item, "status": "in_progress", "content": []},
        },
        {
            "type": "response.content_part.added",
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "part": empty_part,
        },
    ]
    events += [
        {
            "type": "response.output_text.delta",
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "delta": piece,
            "logprobs": [],
        }
        for piece in _pieces(text)
    ]
    events += [
        {
            "type": "response.output_text.done",
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "text": text,
            "logprobs": [],
        },
        {
            "type": "response.content_part.done",
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "part": item["content"][0],
        },
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": final},
    ]
    for seq, event in enumerate(events):
        yield _sse({**event, "sequence_number": seq}, event=str(event["type"]))


def _error_body(endpoint: str, status: int, message: str) -> dict[str, Any]:
    kind = {
        400: "invalid_request_error",
        401: "authentication_error",
        404: "not_found_error",
        429: "rate_limit_error",
    }.get(status, "api_error")
    if endpoint == "/messages":
        return {"type": "error", "error": {"type": kind, "message": message}}
    return {"error": {"message": message, "type": kind, "param": None, "code": str(status)}}


def _pieces(text: str) -> list[str]:
    """The reply split in a few stream deltas (words with their trailing space)."""
    words = re.findall(r"\S+\s*", text)
    return words or [text]


def _sse(obj: dict[str, Any], event: str | None = None) -> bytes:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(obj)}\n\n".encode()


# --- the server -----------------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    """Tracks open connections so that ``stop()`` also ends kept-alive ones."""

    daemon_threads = True
    allow_reuse_address = True
    upstream: FakeUpstream

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


class _Handler(BaseHTTPRequestHandler):
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
            self._send_json(404, _error_body(record.endpoint, 404, f"no route GET {path}"))

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
            self._send_json(404, _error_body(endpoint, 404, f"no route POST {path}"))
            return
        if upstream.fail_status:
            status = upstream.fail_status
            self._send_json(status, _error_body(endpoint, status, f"fake upstream failure {status}"))
            return
        if not isinstance(body, dict):
            self._send_json(400, _error_body(endpoint, 400, "request body must be a JSON object"))
            return
        text = upstream.reply_text if upstream.reply_text is not None else reply_text_for(body)
        prompt_tokens = _tokens(len(raw))
        stream = body.get("stream") is True
        if endpoint == "/chat/completions":
            if stream:
                self._send_stream(_chat_stream(body, text, prompt_tokens))
            else:
                self._send_json(200, _chat_completion(body, text, prompt_tokens))
        elif endpoint == "/messages":
            if stream:
                self._send_stream(_anthropic_stream(body, text, prompt_tokens))
            else:
                self._send_json(200, _anthropic_message(body, text, prompt_tokens))
        elif stream:
            self._send_stream(_responses_stream(body, text, prompt_tokens))
        else:
            self._send_json(200, _response_object(body, text, prompt_tokens))

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
        """Server-sent events, delimited by closing the connection (no Content-Length)."""
        self.close_connection = True
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            for event in events:
                self.wfile.write(event)
                self.wfile.flush()
        except OSError:
            pass


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
        server = _Server((self.host, self.port), _Handler)
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
