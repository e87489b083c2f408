"""A scripted provider behind the proxy: checks each request like the provider's API, steers an agent.

It speaks Anthropic Messages (``/v1/messages``), OpenAI chat completions (``/v1/chat/completions``)
and OpenAI Responses (``/v1/responses``), whole or streamed (server-sent events), and plays the
model of an agent session over a :class:`~litellm_ctx_hook.testing.agent_workspace.Workspace`:

1. every request is checked as the provider would (:mod:`.provider_checks`: tool call pairing,
   ``cache_control`` blocks, input + output within ``window``, thinking blocks); a failure is
   answered ``400`` with the provider's error body and counted as a rejection;
2. a request offering the agent's file-reading tool (``Read`` / ``read``) or its shell
   (``Bash`` / ``shell`` / ``exec_command`` …) is a turn of the session: the answer is a call of that
   tool on the next log file, and once the newest tool result holds the last file whole, a final
   text answer naming the notes it can still see; when the newest result does not hold the file it
   asked for whole (it was cut on the way), it asks for the same file again, as a model would;
3. any other request (titles, summaries the client makes for itself) gets a short text answer.

Everything is recorded (:class:`Turn` per session turn) for the tests to read: which file each turn
asked for, whether the newest result was whole, the token count, which needles the request still
showed.
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from types import TracebackType
from typing import Any

from .agent_workspace import LogFile, Workspace
from .fake_replies import (
    anthropic_message,
    anthropic_stream,
    chat_completion,
    chat_stream,
    error_body,
    response_object,
    responses_stream,
)
from .fake_upstream import TrackingServer, send_events
from .provider_checks import CHECKS, VIEWS, RequestView, ToolSpec, body_text, error_code
from .provider_replies import (
    ToolCall,
    anthropic_tool_message,
    anthropic_tool_stream,
    chat_tool_completion,
    chat_tool_stream,
    responses_tool_object,
    responses_tool_stream,
)

READ_TOOLS = ("read",)  # lower-cased names of file-reading tools
SHELL_TOOLS = ("bash", "shell", "shell_command", "exec_command", "local_shell")
PATH_KEYS = ("file_path", "filePath", "path")


BodyCount = Callable[[Mapping[str, Any], str], int]


def plugin_counter() -> BodyCount:
    """Token counts by the plugin's own counter for the model named in the body."""
    from ..adapters import adapter_for
    from ..analysis.counting import TokenCounter
    from ..conversation import Format
    from ..settings import load_settings

    counter = TokenCounter(load_settings())
    formats = {"/messages": Format.ANTHROPIC, "/chat/completions": Format.OPENAI, "/responses": Format.RESPONSES}

    def count(body: Mapping[str, Any], endpoint: str) -> int:
        fmt = formats[endpoint]
        return counter.count(adapter_for(fmt).parse(body), str(body.get("model") or "")).total

    return count


def file_tool(view: RequestView) -> ToolSpec | None:
    """The tool the scripted model reads files with: a read tool with a path argument, else a shell."""
    for spec in view.tools:
        if spec.name.lower() in READ_TOOLS and any(k in spec.properties for k in PATH_KEYS):
            return spec
    for spec in view.tools:
        if spec.name.lower() in SHELL_TOOLS:
            return spec
    return None


def read_arguments(spec: ToolSpec, path: Path, workdir: Path) -> dict[str, Any]:
    """Arguments that make ``spec`` show the whole file at ``path``."""
    args: dict[str, Any] = {}
    for key in PATH_KEYS:
        if key in spec.properties:
            args[key] = str(path)
            break
    else:
        command = spec.properties.get("command")
        if isinstance(command, Mapping) and command.get("type") == "array":
            args["command"] = ["cat", str(path)]
        elif "cmd" in spec.properties:
            args["cmd"] = f"cat {path}"
        else:
            args["command"] = f"cat {path}"
        if "workdir" in spec.properties:
            args["workdir"] = str(workdir)
    if "max_output_tokens" in spec.properties:  # codex's exec_command: no truncation of the file
        args["max_output_tokens"] = 30_000
    if "description" in spec.properties:
        args["description"] = f"Read {path.name}"
    return args


def holds_whole(text: str, file: LogFile) -> bool:
    """Every line of ``file`` is in ``text`` (line-number prefixes and framing allowed)."""
    return all(line in text for line in file.lines)


@dataclass(frozen=True, slots=True)
class Turn:
    """One request of the session (the agent's own model calls), as the upstream received it."""

    endpoint: str
    status: int
    tokens: int
    asked: int | None  # index of the file this turn's answer asked for (None: the final answer)
    newest: tuple[tuple[int, bool], ...]  # (file index, arrived whole) of the newest turn's tool results
    needles_seen: tuple[str, ...]  # needle identifiers present in the request
    error: str = ""
    streamed: bool = False
    body: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, slots=True)
class Rejection:
    endpoint: str
    message: str
    main: bool


class _Server(TrackingServer):
    owner: ScriptedUpstream


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0].removeprefix("/v1") == "/models":
            self._json(200, {"object": "list", "data": [{"id": "scripted", "object": "model", "created": 0}]})
        else:
            self._json(404, error_body("", 404, f"no route GET {self.path}"))

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0]
        endpoint = path.removeprefix("/v1")
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        if not isinstance(body, dict):
            self._json(400, error_body(endpoint, 400, "request body must be a JSON object"))
            return
        status, payload = self.server.owner.answer(endpoint, body)
        if isinstance(payload, dict):
            self._json(status, payload)
        else:
            self._stream(payload)

    def _json(self, status: int, obj: Mapping[str, Any]) -> None:
        data = json.dumps(obj).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("request-id", f"req_{uuid.uuid4().hex[:16]}")
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True

    def _stream(self, events: Iterator[bytes]) -> None:
        send_events(self, events)


Reply = dict[str, Any] | Iterator[bytes]


class ScriptedUpstream:
    """The scripted provider; ``start()`` returns its base URL (without ``/v1``).

    ``window``: the context window every request is checked against (settable between sessions,
    with :meth:`reset`). ``count``: tokens of a body (default: the plugin's counter).
    """

    def __init__(
        self,
        workspace: Workspace | None = None,
        *,
        window: int = 128_000,
        count: BodyCount | None = None,
        max_turns: int | None = None,
    ) -> None:
        self.window = window
        self._count = count
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._ids = itertools.count(1)
        self.reset(workspace, window=window, max_turns=max_turns)

    # --- session state ------------------------------------------------------------------------------

    def reset(self, workspace: Workspace | None, *, window: int | None = None, max_turns: int | None = None) -> None:
        """A new session over ``workspace`` (and, if given, a new window)."""
        with self._lock:
            self.workspace = workspace
            if window is not None:
                self.window = window
            n = len(workspace.files) if workspace else 0
            self.max_turns = max_turns or 3 * n + 6
            self.turns: list[Turn] = []
            self.side_requests = 0
            self.rejections: list[Rejection] = []
            self._asked: dict[str, int] = {}  # call id -> file index
            self._next = 0
            self._whole: dict[int, str] = {}  # file index -> the first result that held it whole

    @property
    def reads_done(self) -> int:
        """Files whose whole content reached the upstream as the newest tool result."""
        with self._lock:
            return len(self._whole)

    def whole_results(self) -> list[str]:
        """The tool results that held a file whole, in file order (what the client sent for each)."""
        with self._lock:
            return [self._whole[i] for i in sorted(self._whole)]

    @property
    def newest_cut(self) -> int:
        """Requests whose newest tool result did not hold the file it answered whole."""
        with self._lock:
            return sum(1 for t in self.turns for _, whole in t.newest if not whole)

    @property
    def rereads(self) -> int:
        with self._lock:
            asked = [t.asked for t in self.turns if t.asked is not None]
            return len(asked) - len(set(asked))

    @property
    def finished(self) -> bool:
        with self._lock:
            return bool(self.turns) and self.turns[-1].asked is None and self.turns[-1].status == 200

    def first_turn(self) -> Turn | None:
        with self._lock:
            return self.turns[0] if self.turns else None

    def last_turn(self) -> Turn | None:
        with self._lock:
            ok = [t for t in self.turns if t.status == 200]
            return ok[-1] if ok else None

    # --- answering ----------------------------------------------------------------------------------

    def count(self, body: Mapping[str, Any], endpoint: str) -> int:
        if self._count is None:
            self._count = plugin_counter()
        return self._count(body, endpoint)

    def answer(self, endpoint: str, body: dict[str, Any]) -> tuple[int, Reply]:
        if endpoint == "/messages/count_tokens":
            return 200, {"input_tokens": self.count(body, "/messages")}
        check = CHECKS.get(endpoint)
        if check is None:
            return 404, error_body(endpoint, 404, f"no route POST {endpoint}")
        view = VIEWS[endpoint](body)
        tool = file_tool(view)
        tokens = self.count(body, endpoint)
        problem = check(body, self.window, lambda _b: tokens)
        with self._lock:
            main = tool is not None and self.workspace is not None
            if problem:
                self.rejections.append(Rejection(endpoint, problem, main))
                if main:
                    self.turns.append(
                        Turn(endpoint, 400, tokens, None, (), (), problem, body.get("stream") is True, body)
                    )
                err = error_body(endpoint, 400, problem)
                code = error_code(endpoint, problem)
                if code and isinstance(err.get("error"), dict):
                    err["error"]["code"] = code
                return 400, err
            if not main or tool is None or self.workspace is None:
                self.side_requests += 1
                return 200, self._text(endpoint, body, "ok", tokens)
            asked, newest = self._step(view)
            seen = tuple(n for n in self.workspace.needle_ids if n in body_text(body))
            self.turns.append(Turn(endpoint, 200, tokens, asked, newest, seen, "", body.get("stream") is True, body))
            if asked is None:
                return 200, self._text(endpoint, body, self._final_text(seen), tokens)
            call = self._call(endpoint, body, tool, asked)
            self._asked[call.call_id] = asked
        return 200, self._tool(endpoint, body, call, tokens)

    def _step(self, view: RequestView) -> tuple[int | None, tuple[tuple[int, bool], ...]]:
        """The file to ask for next (None: answer) and what the newest tool results held."""
        assert self.workspace is not None
        newest: list[tuple[int, bool]] = []
        retry: int | None = None
        for call_id, text in view.newest_results:
            index = self._asked.get(call_id)
            if index is None:
                continue
            whole = holds_whole(text, self.workspace.files[index])
            newest.append((index, whole))
            if whole:
                self._whole.setdefault(index, text)
                self._next = max(self._next, index + 1)
            else:
                retry = index if retry is None else min(retry, index)
        if len(self.turns) + 1 >= self.max_turns:
            return None, tuple(newest)
        target = retry if retry is not None else self._next
        return (target if target < len(self.workspace.files) else None), tuple(newest)

    def _call(self, endpoint: str, body: Mapping[str, Any], tool: ToolSpec, index: int) -> ToolCall:
        assert self.workspace is not None
        n = next(self._ids)
        call_id = {"/messages": f"toolu_{n:04d}{uuid.uuid4().hex[:16]}", "/chat/completions": f"call_{n:04d}"}.get(
            endpoint, f"call_{n:04d}{uuid.uuid4().hex[:8]}"
        )
        path = self.workspace.path_of(index)
        thinking = ""
        config = body.get("thinking")
        if endpoint == "/messages" and isinstance(config, Mapping) and config.get("type") in ("enabled", "adaptive"):
            thinking = f"The next log to look at is {path.name}; I will read it whole."
        return ToolCall(call_id, tool.name, read_arguments(tool, path, self.workspace.root), thinking)

    def _final_text(self, seen: tuple[str, ...]) -> str:
        assert self.workspace is not None
        notes = ", ".join(seen) if seen else "none"
        return f"I read all {len(self.workspace.files)} logs. The reviewer notes I can still see: {notes}."

    def _text(self, endpoint: str, body: Mapping[str, Any], text: str, tokens: int) -> Reply:
        stream = body.get("stream") is True
        if endpoint == "/messages":
            return anthropic_stream(dict(body), text, tokens) if stream else anthropic_message(body, text, tokens)
        if endpoint == "/chat/completions":
            return chat_stream(dict(body), text, tokens) if stream else chat_completion(body, text, tokens)
        return responses_stream(dict(body), text, tokens) if stream else response_object(body, text, tokens)

    def _tool(self, endpoint: str, body: Mapping[str, Any], call: ToolCall, tokens: int) -> Reply:
        stream = body.get("stream") is True
        if endpoint == "/messages":
            return anthropic_tool_stream(body, call, tokens) if stream else anthropic_tool_message(body, call, tokens)
        if endpoint == "/chat/completions":
            return chat_tool_stream(body, call, tokens) if stream else chat_tool_completion(body, call, tokens)
        return responses_tool_stream(body, call, tokens) if stream else responses_tool_object(body, call, tokens)

    # --- the server ---------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("ScriptedUpstream is not started: call start() first")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> str:
        if self._server is None:
            server = _Server(("127.0.0.1", 0), _Handler)
            server.owner = self
            self._server = server
            self._thread = threading.Thread(target=server.serve_forever, name="scripted-upstream", daemon=True)
            self._thread.start()
        return self.url

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> ScriptedUpstream:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


__all__ = [
    "Rejection",
    "ScriptedUpstream",
    "Turn",
    "file_tool",
    "holds_whole",
    "plugin_counter",
    "read_arguments",
]
