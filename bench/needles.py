"""What an agent needs from its tool output: the one line that differs, at the end of a long session.

Generated sessions (no external data): a system prompt, a task, then ``calls`` tool calls whose
results are about 5k-token outputs of seven kinds, in turn: an application log, a pytest run, a jest
run, a build log, a long directory listing, a JSON array of records and a diff. Each holds one
**needle** in its middle, among lines like it: a note with an identifier, a failing test, a warning
with a value, an odd file, an outlier record, a changed config value. The session grows turn by
turn (an assistant tool call, its result) as an OpenAI chat request to ``gpt-4o`` with
``max_tokens`` 4096; every request is managed at a window of 64k or 128k tokens by our engine (the
extractive condenser, its defaults; one engine per session and window, so summaries are reused
from turn to turn as in the proxy).

In the **last request** we count the needles still visible: a needle is visible when one line of
the request holds all its markers (its identifier and what makes it odd, e.g. ``OPS-4411`` and
``canary``; the JSON record's id and status). Methods, at the same token budget (our last
request's tokens, by our count):

- ``ours``: the engine's last request;
- ``trim``: ``litellm.utils.trim_messages``, its ``max_tokens`` lowered until the output fits the
  budget by our count (``bench.condensation.fit_trim``);
- ``clear_tool_uses``: Anthropic's context-editing defaults, applied when the request exceeds the
  budget: the results of the last 3 tool uses kept, older ones replaced by a placeholder (the
  budget is not forced on it; its own size is reported);
- ``compress``: LiteLLM's ``litellm.compress()`` (BM25 relevance to the last user message, stubs
  for the rest; LiteLLM 1.110 and later), its ``compression_target`` lowered until the output fits
  the budget; ``n/a`` when the installed LiteLLM has none.

Also: the time our engine takes to manage the last request with nothing cached, as a ratio to one
cold count of it, and the CPU time to collapse one tool output of each kind
(:func:`templates.collapse`).

    python -m bench.needles [--calls N] [--windows 64000,128000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm
from litellm.utils import trim_messages

from litellm_ctx_hook.adapters import adapter_for
from litellm_ctx_hook.analysis.counting import TokenCounter
from litellm_ctx_hook.analysis.templates import collapse
from litellm_ctx_hook.analysis.tokenizers import Family
from litellm_ctx_hook.conversation import Format
from litellm_ctx_hook.engine.engine import ContextEngine
from litellm_ctx_hook.settings import load_settings

LITELLM_VERSION = version("litellm")
MODEL = "gpt-4o"
MAX_TOKENS = 4096
WINDOWS = (64_000, 128_000)
CALLS = 40
# Lines per tool output of each kind: about 5k tokens each.
LINES = {"log": 100, "pytest": 180, "jest": 270, "build": 160, "listing": 140, "json": 90, "diff": 320}
KEEP_TOOL_USES = 3  # Anthropic's clear_tool_uses default
CLEARED = "[tool result cleared]"
METHODS = ("ours", "trim", "clear_tool_uses", "compress")
KINDS = ("log", "pytest", "jest", "build", "listing", "json", "diff")

SYSTEM = (
    "You are a coding agent working in a large repository. Use the tools to read files, run commands and "
    "inspect output; keep working until the task is done. Report anything unusual you see in tool output: "
    "failures, warnings, notes with ticket numbers, odd files, records that differ, changed settings. "
) * 8


@dataclass(frozen=True, slots=True)
class Needle:
    """One line that matters: visible when one line of a request holds every marker."""

    kind: str
    call: int
    markers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Output:
    command: str
    text: str
    needle: Needle


def _hex(r: random.Random, n: int) -> str:
    return "".join(r.choice("0123456789abcdef") for _ in range(n))


def _around(r: random.Random, lines: list[str], needle: str) -> list[str]:
    at = r.randrange(len(lines) * 2 // 5, len(lines) * 3 // 5)
    return [*lines[:at], needle, *lines[at:]]


def _log(r: random.Random, call: int) -> Output:
    n = LINES["log"]
    ticket = f"OPS-{4000 + call * 37}"
    lines = [
        f"2026-11-03T10:{i // 60:02d}:{i % 60:02d}.{r.randrange(1000):03d}Z INFO worker-{r.randrange(1, 9)} "
        f"batch={call * 1000 + i} chunk=0x{_hex(r, 6)} sha={_hex(r, 12)} latency={r.randrange(3, 48)}ms "
        f"rows={r.randrange(1000, 9000)} status=ok"
        for i in range(n)
    ]
    if call % 2:
        value = f"{90 + r.randrange(10)}.{r.randrange(10)}%"
        needle = f"2026-11-03T10:01:02.417Z WARN worker-3 disk usage at {value} on /var/lib/queue-{call}"
        markers: tuple[str, ...] = (value, f"queue-{call}")
    else:
        needle = f"2026-11-03T10:01:02.417Z NOTE ticket {ticket}: retry budget moved to the canary pool"
        markers = (ticket, "canary")
    return Output(f"cat logs/worker-{call}.log", "\n".join(_around(r, lines, needle)), Needle("log", call, markers))


def _pytest(r: random.Random, call: int) -> Output:
    n = LINES["pytest"]
    lines = [
        f"tests/unit/test_module_{i // 8:02d}.py::test_case_{call}_{i:03d}[param-{_hex(r, 4)}] PASSED"
        f"{' ' * 10}[{(i * 100) // n:3d}%]"
        for i in range(n)
    ]
    name = f"test_refund_rounding_{call}"
    needle = f"tests/unit/test_billing.py::{name}[eur-{_hex(r, 4)}] FAILED{' ' * 10}[ 51%]"
    body = ["============ test session starts ============", *_around(r, lines, needle)]
    body.append(f"============ 1 failed, {n} passed in {r.randrange(20, 90)}.{r.randrange(100)}s ============")
    return Output("pytest -v tests/unit", "\n".join(body), Needle("pytest", call, (name, "FAILED")))


def _jest(r: random.Random, call: int) -> Output:
    n = LINES["jest"]
    lines = [f"    ✓ renders widget {call}-{i} with props {_hex(r, 6)} ({r.randrange(1, 40)} ms)" for i in range(n)]
    code = f"SAVE{call:02d}X"
    needle = f"    ✕ applies discount code {code} to the basket total ({r.randrange(5, 40)} ms)"
    body = ["PASS src/components/widgets.test.tsx", *_around(r, lines, needle)]
    body.append(f"Tests:       1 failed, {n} passed, {n + 1} total")
    return Output("npx jest src/components", "\n".join(body), Needle("jest", call, (code, "✕")))


def _build(r: random.Random, call: int) -> Output:
    n = LINES["build"]
    lines = [
        f"[{(i * 100) // n:3d}%] Building CXX object src/core/CMakeFiles/core.dir/unit_{call}_{i:03d}.cpp.o "
        f"(cache {_hex(r, 8)})"
        for i in range(n)
    ]
    var = f"retry_budget_{call}"
    needle = f"src/net/socket_pool.cpp:{200 + call}:18: warning: unused variable '{var}' [-Wunused-variable]"
    return Output("cmake --build build", "\n".join(_around(r, lines, needle)), Needle("build", call, (var, "warning")))


def _listing(r: random.Random, call: int) -> Output:
    n = LINES["listing"]
    lines = [
        f"-rw-r--r--  1 dev  staff  {r.randrange(1000, 99999):>6d} Nov  {r.randrange(1, 29):>2d} "
        f"{r.randrange(24):02d}:{r.randrange(60):02d} report_{call}_{i:04d}_{_hex(r, 6)}.csv"
        for i in range(n)
    ]
    name = f"deploy_hook_{call}.sh"
    needle = f"-rwxrwxrwx  1 root root     512 Nov  3 04:12 {name}"
    text = "\n".join(_around(r, lines, needle))
    return Output(f"ls -l data/exports-{call}", text, Needle("listing", call, (name, "rwxrwxrwx")))


def _json(r: random.Random, call: int) -> Output:
    n = LINES["json"]
    records = [
        {
            "id": call * 1000 + i,
            "account": f"acct_{_hex(r, 8)}",
            "region": r.choice(["eu-west", "us-east", "ap-south"]),
            "status": "active",
            "balance": round(r.uniform(10, 500), 2),
            "updated": f"2026-11-{r.randrange(1, 29):02d}T{r.randrange(24):02d}:00:00Z",
        }
        for i in range(n)
    ]
    chargeback = f"CB-{7000 + call}"
    odd = {**records[0], "id": call * 1000 + 999, "status": "suspended", "note": f"chargeback {chargeback}"}
    rows = [json.dumps(x) for x in _around(r, records, odd)]  # type: ignore[arg-type]
    text = "[\n" + ",\n".join(rows) + "\n]"
    return Output(f"curl -s api/accounts?page={call}", text, Needle("json", call, (chargeback, "suspended")))


def _diff(r: random.Random, call: int) -> Output:
    n = LINES["diff"]
    lines: list[str] = [f"--- a/services/api-{call}/package-lock.json", f"+++ b/services/api-{call}/package-lock.json"]
    for i in range(n // 4):
        major, minor = r.randrange(1, 9), r.randrange(20)
        lines += [
            f"@@ -{i * 40 + 1},6 +{i * 40 + 1},6 @@",
            f'-      "version": "{major}.{minor}.{r.randrange(10)}",',
            f'+      "version": "{major}.{minor + 1}.0",',
            f'       "resolved": "https://registry.npmjs.org/pkg-{call}-{i}/-/pkg-{_hex(r, 6)}.tgz",',
        ]
    value = f"{30000 + call * 100}"
    needle = [f"-  timeout_ms: {5000 + call}", f"+  timeout_ms: {value}"]
    at = len(lines) // 2
    text = "\n".join([*lines[:at], f"--- a/services/api-{call}/config.yaml", *needle, *lines[at:]])
    return Output(f"git diff HEAD~1 services/api-{call}", text, Needle("diff", call, (f"timeout_ms: {value}", "+")))


_MAKERS: dict[str, Callable[[random.Random, int], Output]] = {
    "log": _log,
    "pytest": _pytest,
    "jest": _jest,
    "build": _build,
    "listing": _listing,
    "json": _json,
    "diff": _diff,
}


def outputs(calls: int, seed: int = 7) -> list[Output]:
    """The session's tool outputs, kinds in turn, reproducible from ``seed``."""
    r = random.Random(seed)
    return [_MAKERS[KINDS[call % len(KINDS)]](r, call) for call in range(calls)]


def session(outs: Sequence[Output], upto: int) -> list[dict[str, Any]]:
    """The OpenAI chat messages of a session after ``upto`` tool calls."""
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM},
        {
            "role": "user",
            "content": "Go through the services' logs, tests, builds, exports, accounts and diffs one by one, "
            "and at the end list every unusual thing you saw, with its identifier.",
        },
    ]
    for call, out in enumerate(outs[:upto]):
        call_id = f"call_{call:03d}"
        messages.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": "bash", "arguments": json.dumps({"command": out.command})},
                    }
                ],
            }
        )
        messages.append({"role": "tool", "tool_call_id": call_id, "content": out.text})
    return messages


def request_text(messages: Sequence[dict[str, Any]]) -> str:
    """Every text of a request (contents and tool arguments), one after another."""
    parts: list[str] = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [str(p.get("text", "")) for p in content if isinstance(p, dict)]
        for call in m.get("tool_calls") or []:
            parts.append(str(call.get("function", {}).get("arguments", "")))
    return "\n".join(parts)


def visible(needles: Sequence[Needle], text: str) -> list[bool]:
    """For each needle, whether one line of ``text`` holds all its markers."""
    lines = text.splitlines()
    return [any(all(m in line for m in n.markers) for line in lines if n.markers[0] in line) for n in needles]


class Bench:
    def __init__(self) -> None:
        self.counter = TokenCounter(load_settings())
        self.openai = adapter_for(Format.OPENAI)

    def tokens(self, messages: list[dict[str, Any]]) -> int:
        return self.counter.count(self.openai.parse({"model": MODEL, "messages": messages}), MODEL).total

    def ours(self, outs: Sequence[Output], window: int) -> tuple[list[dict[str, Any]], int]:
        """Every request of the session managed in turn by one engine; the last one and its tokens."""
        engine = ContextEngine(load_settings())

        async def run() -> tuple[list[dict[str, Any]], int]:
            last: tuple[list[dict[str, Any]], int] = ([], 0)
            for upto in range(1, len(outs) + 1):
                body = {"model": MODEL, "messages": session(outs, upto), "max_tokens": MAX_TOKENS}
                result = await engine.manage(body, Format.OPENAI, MODEL, limit=window)
                last = (list(result.body["messages"]), result.tokens_after)
            return last

        return asyncio.run(run())

    def trim(self, messages: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
        """``trim_messages`` lowered until its output fits ``budget`` by our count."""
        ask = budget
        out: list[dict[str, Any]] = []
        for _ in range(16):
            try:
                out = trim_messages(json.loads(json.dumps(messages)), model=MODEL, max_tokens=ask)
            except Exception:  # it crashes on some inputs
                out = []
            if out and self.tokens(out) <= budget:
                return out
            ask = int(ask * 0.9)
        return out

    @staticmethod
    def clear_tool_uses(messages: list[dict[str, Any]], budget: int, tokens: Callable[[list[Any]], int]) -> list[Any]:
        """Anthropic's ``clear_tool_uses`` defaults: past the budget, the results of all but the last
        ``KEEP_TOOL_USES`` tool uses are replaced by a placeholder."""
        if tokens(messages) <= budget:
            return messages
        results = [i for i, m in enumerate(messages) if m["role"] == "tool"]
        clear = set(results[:-KEEP_TOOL_USES])
        return [{**m, "content": CLEARED} if i in clear else m for i, m in enumerate(messages)]

    def compress(self, messages: list[dict[str, Any]], budget: int) -> list[dict[str, Any]] | None:
        """``litellm.compress()`` lowered until its output fits ``budget``; ``None`` without it."""
        compress = getattr(litellm, "compress", None)
        if compress is None:
            return None
        # It fails on an assistant turn's ``content: None`` (a tool call without text): "" instead.
        given = [{**m, "content": "" if m.get("content") is None else m["content"]} for m in messages]
        target = budget
        out: list[dict[str, Any]] = messages
        for _ in range(16):
            result = compress(
                json.loads(json.dumps(given)), model=MODEL, compression_trigger=0, compression_target=target
            )
            out = list(result["messages"])
            if self.tokens(out) <= budget:
                return out
            target = int(target * 0.85)
        return out


def run(calls: int = CALLS, windows: Sequence[int] = WINDOWS) -> dict[str, Any]:
    logging.getLogger("LiteLLM").setLevel(logging.CRITICAL)
    bench = Bench()
    outs = outputs(calls)
    needles = [o.needle for o in outs]
    full = session(outs, calls)
    result: dict[str, Any] = {
        "calls": calls,
        "litellm": LITELLM_VERSION,
        "tool_output_tokens_mean": round(sum(bench.counter.count_text(o.text, Family.O200K) for o in outs) / calls),
        "session_tokens": bench.tokens(full),
        "windows": {},
    }
    for window in windows:
        ours, budget = bench.ours(outs, window)
        rows: dict[str, Any] = {}
        methods: dict[str, list[dict[str, Any]] | None] = {
            "ours": ours,
            "trim": bench.trim(full, budget),
            "clear_tool_uses": bench.clear_tool_uses(full, budget, bench.tokens),
            "compress": bench.compress(full, budget),
        }
        for name, messages in methods.items():
            if messages is None:
                rows[name] = "n/a (LiteLLM < 1.110)"
                continue
            seen = visible(needles, request_text(messages))
            by_kind: dict[str, str] = {}
            for kind in KINDS:
                flags = [s for s, n in zip(seen, needles, strict=True) if n.kind == kind]
                by_kind[kind] = f"{sum(flags)}/{len(flags)}"
            rows[name] = {
                "needles_visible": round(sum(seen) / len(seen), 3),
                "visible": f"{sum(seen)}/{len(seen)}",
                "tokens": bench.tokens(messages),
                "by_kind": by_kind,
            }
        result["windows"][str(window)] = {"budget": budget, "methods": rows}
    return result


def latency(calls: int = CALLS, window: int = WINDOWS[0]) -> dict[str, Any]:
    """Managing the session's last request with nothing cached, against one cold count of it; and
    collapsing one tool output of each kind."""
    outs = outputs(calls)
    body = {"model": MODEL, "messages": session(outs, calls), "max_tokens": MAX_TOKENS}

    def cold_count() -> float:
        t = time.perf_counter()
        TokenCounter(load_settings()).count(adapter_for(Format.OPENAI).parse(body), MODEL)
        return time.perf_counter() - t

    async def manage() -> float:
        engine = ContextEngine(load_settings())  # a new engine: nothing cached
        t = time.perf_counter()
        await engine.manage(body, Format.OPENAI, MODEL, limit=window)
        return time.perf_counter() - t

    async def manage_all() -> float:
        return min([await manage() for _ in range(3)])

    count_s = min(cold_count() for _ in range(3))
    manage_s = asyncio.run(manage_all())
    collapse_ms: dict[str, float] = {}  # CPU time: the machine may be busy with other work
    for out in outs[: len(KINDS)]:
        t = time.process_time()
        for _ in range(20):
            collapse(out.text)
        collapse_ms[out.needle.kind] = round((time.process_time() - t) / 20 * 1000, 2)
    return {
        "window": window,
        "cold_count_s": round(count_s, 4),
        "manage_s": round(manage_s, 4),
        "ratio": round(manage_s / count_s, 2),
        "collapse_ms_per_output": collapse_ms,
    }


def table(result: dict[str, Any]) -> str:
    """The needle shares as a Markdown table, one row per window."""
    head = "| window | budget | " + " | ".join(METHODS) + " |"
    lines = [head, "|" + "---|" * (len(METHODS) + 2)]
    for window, row in result["windows"].items():
        cells = []
        for name in METHODS:
            cell = row["methods"][name]
            cells.append(cell if isinstance(cell, str) else f"{cell['visible']} ({cell['tokens']} tok)")
        lines.append(f"| {int(window) // 1000}k | {row['budget']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--calls", type=int, default=CALLS)
    parser.add_argument("--windows", default=",".join(str(w) for w in WINDOWS))
    parser.add_argument("--no-latency", action="store_true")
    args = parser.parse_args()
    windows = [int(w) for w in args.windows.split(",")]
    result = run(args.calls, windows)
    if not args.no_latency:
        result["latency"] = latency(args.calls, windows[0])
    print(json.dumps(result, indent=2, ensure_ascii=False))
    print(table(result))


if __name__ == "__main__":
    main()
