"""Differential fuzzing: the same bodies through a proxy without and with the plugin.

Two ``litellm --config`` proxies, identical but for their callbacks (none, or
``litellm_ctx_hook.proxy_handler_instance``), each in front of its own recording fake upstream.
Every body of :mod:`bench.fuzz_corpus` (three routes, valid conversations and mutations, fixed
seed) is sent to both, one at a time per proxy; after each, the upstream's record says what the
proxy forwarded. A *finding* is a body for which the plugin

* answered 5xx where the plain proxy did not,
* answered a 4xx the plain proxy did not, other than the documented ``context_window_exceeded``,
* forwarded a different body from the plain proxy's without reporting a change (its
  ``x-ctx-tokens-before``/``-after`` headers equal or absent): a body it could not parse must go
  through untouched,

and, from the plugin proxy's log, every stack trace through the plugin's code and every ERROR line
of its logger (0 allowed: malformed input is the client's fault, one WARNING line at most).

    python -m bench.fuzz                         # 10,002 bodies (minutes)
    python -m bench.fuzz --bodies 300 --seed 7   # a quick look
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import threading
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import httpx

from bench.fuzz_corpus import SEED, Case, cases
from litellm_ctx_hook.testing.fake_upstream import FakeUpstream, is_summarizer_call
from litellm_ctx_hook.testing.proxy import ProxyProcess, model_entry, start_proxy

SMALL_WINDOW = 8_000
CLAUDE_WINDOW = 24_000
PLUGIN = "litellm_ctx_hook.proxy_handler_instance"
TIMEOUT_S = 180.0


def proxy_config(upstream: str, *, plugin: bool) -> dict[str, Any]:
    """The two proxies' config: the same models, the plugin's callback or none."""
    models = [
        model_entry("gpt-4o-mini", "openai/gpt-4o-mini", upstream),
        model_entry("small", "openai/gpt-4o-mini", upstream, model_info={"max_input_tokens": SMALL_WINDOW}),
        model_entry("claude-sonnet", "anthropic/claude-sonnet-4-5-20250929", upstream),
        model_entry(
            "claude-small",
            "anthropic/claude-sonnet-4-5-20250929",
            upstream,
            model_info={"max_input_tokens": CLAUDE_WINDOW},
        ),
    ]
    settings: dict[str, Any] = {"callbacks": [PLUGIN]} if plugin else {}
    return {"model_list": models, "litellm_settings": settings}


@dataclass(frozen=True)
class Reply:
    """What one proxy did with one body."""

    status: int
    error: str  # the error's type or code, "" on success
    forwarded: tuple[str, ...]  # digests of the bodies that reached the upstream (summariser calls aside)
    changed: bool  # the plugin reported tokens_after != tokens_before
    shapes: tuple[str, ...] = ()  # per forwarded body: its top-level keys and turn count (to say what differed)


@dataclass
class Report:
    bodies: int = 0
    by_route: Counter[str] = field(default_factory=Counter)
    by_mutation: Counter[str] = field(default_factory=Counter)
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: {"plain": Counter(), "plugin": Counter()})
    managed: int = 0
    rejected_window: int = 0
    findings: list[dict[str, Any]] = field(default_factory=list)
    plugin_tracebacks: int = 0
    plugin_errors: int = 0
    plugin_warnings: int = 0
    plain_tracebacks: int = 0
    seconds: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "bodies": self.bodies,
            "by_route": dict(self.by_route),
            "by_mutation": dict(sorted(self.by_mutation.items())),
            "status_plain": {str(k): v for k, v in sorted(self.statuses["plain"].items())},
            "status_plugin": {str(k): v for k, v in sorted(self.statuses["plugin"].items())},
            "managed_by_plugin": self.managed,
            "context_window_exceeded": self.rejected_window,
            "findings": len(self.findings),
            "plugin_stack_traces": self.plugin_tracebacks,
            "plugin_error_lines": self.plugin_errors,
            "plugin_warning_lines": self.plugin_warnings,
            "plain_proxy_stack_traces": self.plain_tracebacks,
            "seconds": round(self.seconds, 1),
        }


def _digest(body: Any) -> str:
    text = json.dumps(body, sort_keys=True, ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()[:16]


def _error_type(resp: httpx.Response) -> str:
    if resp.status_code < 400:
        return ""
    try:
        obj = json.loads(resp.content)
    except ValueError:
        return "unparsed"
    err = obj.get("error", obj.get("detail")) if isinstance(obj, dict) else None
    if isinstance(err, dict):
        for name in ("type", "code"):
            if isinstance(err.get(name), str) and err[name]:
                return str(err[name])
        message = err.get("message") or err.get("error")
        if isinstance(message, str) and "context_window_exceeded" in message:
            return "context_window_exceeded"
    return "other"


_COMPLETIONS = ("/chat/completions", "/messages", "/responses")


def send(client: httpx.Client, upstream: FakeUpstream, case: Case) -> Reply:
    """Send one body and read what reached the upstream (the lane is sequential)."""
    upstream.clear()
    headers = {"content-type": "application/json"}
    if case.body.get("stream"):
        with client.stream("POST", case.path, content=case.encode(), headers=headers) as resp:
            resp.read()
    else:
        resp = client.post(case.path, content=case.encode(), headers=headers)
    error = _error_type(resp)
    if resp.status_code == 400 and b"context_window_exceeded" in resp.content:
        error = "context_window_exceeded"
    before, after = resp.headers.get("x-ctx-tokens-before"), resp.headers.get("x-ctx-tokens-after")
    # Only completions: anything else the proxy sends the upstream (a model list, a health check)
    # can land in either lane at any time.
    bodies = [
        r.body
        for r in upstream.requests
        if r.method == "POST" and r.endpoint in _COMPLETIONS and not is_summarizer_call(r.body)
    ]
    forwarded = tuple(_digest(b) for b in bodies)
    shapes = tuple(_shape(b) for b in bodies)
    return Reply(resp.status_code, error, forwarded, before is not None and before != after, shapes)


def _shape(body: Any) -> str:
    if not isinstance(body, dict):
        return type(body).__name__
    parts = []
    for key in sorted(body):
        value = body[key]
        size = f"[{len(value)}]" if isinstance(value, list) else ""
        parts.append(f"{key}{size}:{_digest(value)[:6]}")
    return " ".join(parts)


def run_lane(proxy: ProxyProcess, upstream: FakeUpstream, corpus: Sequence[Case], out: list[Reply | None]) -> None:
    with httpx.Client(base_url=proxy.base_url, headers=proxy.auth_headers, timeout=TIMEOUT_S) as client:
        for case in corpus:
            try:
                out[case.index] = send(client, upstream, case)
            except httpx.HTTPError as exc:  # a dropped connection is a 5xx for this comparison
                out[case.index] = Reply(599, type(exc).__name__, (), False)


def findings_of(case: Case, plain: Reply, plugin: Reply) -> list[str]:
    found = []
    if plugin.status >= 500 and plain.status < 500:
        found.append(f"plugin {plugin.status} where the plain proxy answered {plain.status}")
    if 400 <= plugin.status < 500 and plugin.status != plain.status and plugin.error != "context_window_exceeded":
        found.append(f"plugin {plugin.status} {plugin.error} where the plain proxy answered {plain.status}")
    if plugin.status < 400 and plain.status < 400 and plugin.forwarded != plain.forwarded and not plugin.changed:
        found.append(f"forwarded a changed body without reporting a change: {plain.shapes} -> {plugin.shapes}")
    return found


_TRACEBACK = re.compile(r"^Traceback \(most recent call last\):$", re.M)


def _tracebacks(text: str) -> list[str]:
    """The frame lines of each stack trace in a log (up to the exception's own, unindented line)."""
    out = []
    for block in _TRACEBACK.split(text)[1:]:
        frames = []
        for line in block.splitlines()[1:]:
            if not line.startswith(" "):
                break
            frames.append(line)
        out.append("\n".join(frames))
    return out


def log_counts(text: str) -> tuple[int, int, int]:
    """(stack traces through the plugin's code, ERROR lines of its logger, its WARNING lines about
    malformed requests), from a log where the plugin writes JSON lines (``CONTEXT_LOG_FORMAT=json``)."""
    traces = sum(1 for frames in _tracebacks(text) if "/litellm_ctx_hook/" in frames)
    errors = warnings = 0
    for line in text.splitlines():
        if not line.startswith("{") or '"logger": "litellm_ctx_hook' not in line:
            continue
        record = json.loads(line)
        errors += record["level"] in ("ERROR", "CRITICAL")
        traces += "Traceback (most recent call last)" in record["message"] or "exc_info" in record
        warnings += record["level"] == "WARNING" and "reason" in record
    return traces, errors, warnings


def run(n: int, seed: int, *, show: int = 10, log_dir: Path | None = None) -> Report:
    corpus = list(cases(n, seed))
    report = Report(bodies=len(corpus))
    started = time.monotonic()
    with ExitStack() as stack:
        up_plain = stack.enter_context(FakeUpstream())
        up_plugin = stack.enter_context(FakeUpstream())
        plain = stack.enter_context(start_proxy(proxy_config(up_plain.url, plugin=False)))
        plugin = stack.enter_context(
            start_proxy(proxy_config(up_plugin.url, plugin=True), {"CONTEXT_LOG_FORMAT": "json"})
        )
        replies: dict[str, list[Reply | None]] = {"plain": [None] * n, "plugin": [None] * n}
        lanes = [
            threading.Thread(target=run_lane, args=(plain, up_plain, corpus, replies["plain"])),
            threading.Thread(target=run_lane, args=(plugin, up_plugin, corpus, replies["plugin"])),
        ]
        for lane in lanes:
            lane.start()
        for lane in lanes:
            lane.join()
        report.seconds = time.monotonic() - started
        report.plugin_tracebacks, report.plugin_errors, report.plugin_warnings = log_counts(plugin.log_text())
        report.plain_tracebacks = len(_TRACEBACK.findall(plain.log_text()))
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            (log_dir / "plain.log").write_text(plain.log_text(), encoding="utf-8")
            (log_dir / "plugin.log").write_text(plugin.log_text(), encoding="utf-8")
    for case in corpus:
        a, b = replies["plain"][case.index], replies["plugin"][case.index]
        assert a is not None and b is not None
        report.by_route[case.route] += 1
        report.by_mutation.update(case.mutations)
        report.statuses["plain"][a.status] += 1
        report.statuses["plugin"][b.status] += 1
        report.managed += b.changed
        report.rejected_window += b.error == "context_window_exceeded"
        for what in findings_of(case, a, b):
            report.findings.append(
                {"index": case.index, "route": case.route, "mutations": case.mutations, "what": what}
            )
    for f in report.findings[:show]:
        print("FINDING", f)
    return report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bodies", type=int, default=10_002)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--log-dir", type=Path, help="keep both proxies' logs here")
    args = parser.parse_args(argv)
    report = run(args.bodies, args.seed, log_dir=args.log_dir)
    print(f"# {platform.node()} ({os.cpu_count()} CPUs), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"# python -m bench.fuzz --bodies {args.bodies} --seed {args.seed}")
    print(json.dumps(report.summary(), indent=2))


if __name__ == "__main__":
    main()
