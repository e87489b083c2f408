"""Prompt-cache cost of the replays: prefix changes against the step bound, cache reads and writes.

Every Claude session and every long Gemini run (mini-swe-agent, ``tool_calls`` form) of
``../shared/evaldata``, request by request (request k = the conversation up to its k-th assistant
call, as the client sent it; Claude sessions from Claude Code's own compaction summary on after it
compacted), at a 64k and a 32k window, with a counting fake summariser, under three policies:

* **ours** — this engine, Redis as its only cache and no turn memo (every turn analysed in full,
  as on a fresh replica); run again in the default configuration (turn memo and in-process tier)
  to check that both send the same requests;
* **today** — the engine of an earlier commit (``--baseline``, default: ``7c3a191``, the engine
  before prompt-cache-aware management), run from a ``git archive`` of it in a subprocess, same
  requests, default configuration;
* **recondense** — from scratch on every WARNING turn: the turn's middle condensed anew to the
  target (no cached summary, no clearing).

Claude Code marks the newest message with ``cache_control``; the replayed Claude requests do too
(the transcripts keep no markers). Gemini requests are chat completions without markers, costed
as if the newest message were marked (automatic prefix caching). Costs: :mod:`bench.prompt_cache`.

A run is *long* when at least one of its requests reaches WARNING at the window (the others are
never managed). Per session: turns, the first managed turn, prefix changes after it (turns whose
request does not start with the previous turn's request, message by message; turns where the
client itself restarted its history are not counted) against ``ceil(growth / ((WARNING − target)
× window)) + 1``, summariser calls, broken tool pairs, the largest request against the window,
cache read / write / uncached tokens and the input cost (0.1 × read + 1.25 × write + 1 × uncached).

    python -m bench.replay_cost [--windows 64000,32000] [--baseline REF]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from litellm_ctx_hook.adapters import adapter_for
from litellm_ctx_hook.analysis.counting import TokenCounter
from litellm_ctx_hook.analysis.risk import ContextRiskLevel
from litellm_ctx_hook.analysis.tokenizers import family_for_model
from litellm_ctx_hook.cache.store import SummaryCache
from litellm_ctx_hook.condensing.condensation import Condenser, Request
from litellm_ctx_hook.conversation import Format
from litellm_ctx_hook.engine.engine import ContextEngine
from litellm_ctx_hook.errors import ContextWindowExceededError
from litellm_ctx_hook.planning.atoms import group_atoms
from litellm_ctx_hook.planning.plan import regions
from litellm_ctx_hook.runtime.stats import EngineStats
from litellm_ctx_hook.settings import load_settings
from litellm_ctx_hook.testing.fake_summarizer import KeywordSummarizer

from . import evaldata
from .prompt_cache import Wire, bill, wire_of
from .replay import requests_of

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
CLAUDE_MODEL = "anthropic/claude-opus-4-6"
GEMINI_MODEL = "gemini/gemini-3-pro-preview"
ROOT = Path(__file__).resolve().parents[1]
BASELINE = "7c3a191"  # the engine before prompt-cache-aware management ("before" in BENCHMARKS.md, "Prompt-cache cost")
FLAT_BENCH = "55c4df2"  # this benchmark before the package was grouped: it emits the baseline's turns


# -- the sessions --------------------------------------------------------------------------------
def _marked(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages with Claude Code's breakpoint on the newest message's last block."""
    last = dict(messages[-1])
    content = last.get("content")
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
    if blocks:
        blocks[-1] = {**blocks[-1], "cache_control": {"type": "ephemeral"}}
        last["content"] = blocks
    return [*messages[:-1], last]


def claude_requests(sample: evaldata.Sample) -> list[dict[str, Any]]:
    """The session's requests as ``bench.replay`` has them, with Claude Code's breakpoint."""
    return [{**r, "messages": _marked(r["messages"])} for r in requests_of(sample)]


def gemini_requests(sample: evaldata.Sample) -> list[dict[str, Any]]:
    msgs = sample.messages
    tools = sample.body.get("tools")
    return [
        {"model": "gemini-3-pro", "messages": msgs[:k], **({"tools": tools} if tools else {})}
        for k, m in enumerate(msgs)
        if m["role"] == "assistant" and k > 0
    ]


def sessions(data: str) -> Iterator[tuple[str, Format, str, list[dict[str, Any]]]]:
    if data == "claude":
        for s in evaldata.claude_sessions():
            yield s.name, Format.ANTHROPIC, CLAUDE_MODEL, claude_requests(s)
    else:
        for s in evaldata.gemini_runs(tool_calls=True):
            yield s.name, Format.OPENAI, GEMINI_MODEL, gemini_requests(s)


# -- one turn as the cache and the checks see it ---------------------------------------------------
class Recorder:
    def __init__(self, fmt: Format, model: str) -> None:
        self.fmt, self.model = fmt, model
        self.counter = TokenCounter(load_settings())
        self.family = family_for_model(model)

    def record(
        self, body: dict[str, Any], messages: list[Any], before: int, after: int, **extra: Any
    ) -> dict[str, Any]:
        conv = adapter_for(self.fmt).parse({**body, "messages": messages})
        tokens = [self.counter.count_message(m, self.family) for m in conv.messages]
        atoms = group_atoms(conv.messages)
        wire = wire_of(messages, tokens, mark_last=self.fmt is not Format.ANTHROPIC)
        return {
            "wire": [wire.keys, wire.tokens, wire.blocks, wire.marks],
            "before": before,
            "after": after,
            "broken": len(atoms.orphan_results) + len(atoms.unanswered_calls),
            **extra,
        }


async def engine_turns(data: str, window: int, scope: str, **overrides: Any) -> dict[str, Any]:
    """Every long session through one engine per session: each turn's record, and the calls."""
    out = {}
    for name, fmt, model, requests in sessions(data):
        settings = load_settings(redis_url=REDIS_URL, context_speculative_condensation=False, **overrides)
        cache = SummaryCache.from_settings(settings)
        summarizer = KeywordSummarizer()
        engine = ContextEngine(settings, summarizer=summarizer, cache=cache)
        rec, turns = Recorder(fmt, model), []
        for body in requests:
            try:
                o = await engine.manage(body, fmt, model, limit=window, scope=f"{scope}-{name.replace(':', '_')}")
            except ContextWindowExceededError:
                turns.append({"rejected": True})
                continue
            acts = o.metadata.get("actions", [])
            flag = o.metadata.get("prefix_changed")
            turns.append(rec.record(body, o.body["messages"], o.tokens_before, o.tokens_after, actions=acts, flag=flag))
        await cache.aclose()
        if any(t.get("actions") or t.get("rejected") for t in turns):
            out[name] = {"turns": turns, "calls": summarizer.calls}
    return out


async def recondense_turns(data: str, window: int) -> dict[str, Any]:
    """Every WARNING turn condensed anew to the target, from scratch (no cache, no clearing)."""
    settings = load_settings(context_speculative_condensation=False, context_cache_size=0)
    out = {}
    for name, fmt, model, requests in sessions(data):
        summarizer = KeywordSummarizer()
        engine = ContextEngine(settings, summarizer=summarizer)
        rec, turns = Recorder(fmt, model), []
        for body in requests:
            a = engine.analyze(body, fmt, model, limit=window)
            messages = body["messages"]
            if a.result.risk_level.rank >= ContextRiskLevel.WARNING.rank:
                condenser = Condenser(settings, engine.counter, EngineStats())
                req = Request(
                    a.conversation,
                    a.count,
                    a.target.model,
                    window,
                    a.result.risk_level,
                    "b",
                    {},
                    time.perf_counter(),
                    60,
                )
                target = int(settings.condensation_target_ratio * window)
                done = await condenser.condense(req, regions(a.conversation.messages, settings), target, summarizer)
                await condenser.drain()
                if done is not None:
                    messages = adapter_for(fmt).render(a.conversation.with_messages(done.messages))["messages"]
            after = engine.analyze({**body, "messages": messages}, fmt, model, limit=window).count.total
            turns.append(rec.record(body, messages, a.count.total, after))
        out[name] = {"turns": turns, "calls": summarizer.calls}
    return out


# -- today's engine, from an earlier commit ----------------------------------------------------------
def baseline_turns(ref: str, data: str, window: int, scope: str) -> dict[str, Any]:
    """The turns of the engine at ``ref``, emitted by this benchmark as it was when the package had
    that engine's layout (``FLAT_BENCH``: the last commit before the package was grouped)."""
    with tempfile.TemporaryDirectory() as tmp:
        package, runner = Path(tmp) / "package", Path(tmp) / "runner"  # apart: it checks it runs another tree
        for tree, path, into in ((ref, "litellm_ctx_hook", package), (FLAT_BENCH, "bench", runner)):
            into.mkdir()
            archive = subprocess.run(["git", "archive", tree, path], cwd=ROOT, check=True, capture_output=True)
            subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
        out_path = Path(tmp) / "turns.json"
        env = {**os.environ, "PYTHONPATH": f"{package}{os.pathsep}{runner}", "CTX_EVALDATA": str(evaldata.ROOT)}
        cmd = [sys.executable, "-m", "bench.replay_cost", "--emit", data, "--window", str(window), "--scope", scope]
        subprocess.run([*cmd, "--out", str(out_path)], cwd=package, env=env, check=True)  # cwd first on sys.path
        result: dict[str, Any] = json.loads(out_path.read_text())
        return result


# -- the measures -------------------------------------------------------------------------------------
def continues(previous: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether the client's request extends its previous one (not a history it restarted)."""
    p, c = previous["messages"], current["messages"]
    return len(c) >= len(p) and wire_of(c[: len(p)], [0] * len(p)).keys == wire_of(p, [0] * len(p)).keys


def measure(requests: list[dict[str, Any]], run: dict[str, Any], window: int) -> dict[str, Any]:
    turns = run["turns"]
    settings = load_settings()
    step = (settings.condensation_warning_threshold - settings.condensation_target_ratio) * window
    wires = [Wire(*(tuple(x) for x in t["wire"])) for t in turns if not t.get("rejected")]
    managed = [i for i, t in enumerate(turns) if not t.get("rejected") and _changed_request(requests[i], t)]
    first = managed[0] if managed else None
    changes = growth = flag_errors = 0
    for i in range((first or len(turns)) + 1, len(turns)):
        prev, cur = turns[i - 1], turns[i]
        if prev.get("rejected") or cur.get("rejected") or not continues(requests[i - 1], requests[i]):
            continue
        growth += max(0, cur["before"] - prev["before"])
        pk, ck = prev["wire"][0], cur["wire"][0]
        changed = not (len(ck) >= len(pk) and ck[len(pk) - 1] == pk[-1]) if pk else False
        changes += changed
        if cur.get("flag") is not None and bool(cur["flag"]) != changed:
            flag_errors += 1
    sent = [t for t in turns if not t.get("rejected")]
    return {
        "turns": len(turns),
        "first_managed": first,
        "prefix_changes": changes,
        "bound": math.ceil(growth / step) + 1 if first is not None else None,
        "summarizer_calls": run["calls"],
        "broken": sum(t["broken"] for t in sent),
        "max_utilisation": round(max(t["after"] for t in sent) / window, 3) if sent else None,
        "rejected": len(turns) - len(sent),
        "flag_errors": flag_errors,
        **bill(wires).as_dict(),
    }


def _changed_request(request: dict[str, Any], turn: dict[str, Any]) -> bool:
    """Whether the request sent differs from the client's (the plugin managed it)."""
    keys = wire_of(request["messages"], [0] * len(request["messages"])).keys
    return tuple(turn["wire"][0]) != keys


async def compare(data: str, window: int, ref: str, run_id: str, recondense: bool) -> list[dict[str, Any]]:
    ours = await engine_turns(data, window, f"cost-{run_id}-{window}-l2", context_cache_size=0)
    memo = await engine_turns(data, window, f"cost-{run_id}-{window}-default")
    today = baseline_turns(ref, data, window, f"cost-{run_id}-{window}-today")
    scratch = await recondense_turns(data, window) if recondense else {}
    requests = {name: reqs for name, _, _, reqs in sessions(data)}
    rows = []
    for name, run in ours.items():
        same = sum(a["wire"] == b["wire"] for a, b in zip(run["turns"], memo[name]["turns"], strict=True))
        row = {"session": name, "window": window, "same_request_with_turn_memo": f"{same}/{len(run['turns'])}"}
        row["ours"] = measure(requests[name], run, window)
        if name in today:
            row["today"] = measure(requests[name], today[name], window)
        if name in scratch:
            row["recondense"] = measure(requests[name], scratch[name], window)
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """The per-session table of BENCHMARKS.md, "Prompt-cache cost", and a total per data set and window."""
    head = (
        "| session | window | turns | first managed | prefix changes: ours / today / recondense | bound "
        "| summariser calls: ours / today / recondense | cache read / write, ours (k tokens) "
        "| input cost: ours / today / recondense (k) | ours vs today | broken pairs | largest request "
        "| same request with turn memo |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    totals: dict[tuple[str, int], list[float]] = {}
    for r in rows:
        o, t, b = r["ours"], r.get("today", {}), r.get("recondense", {})
        ratio = f"{o['cost'] / t['cost'] - 1:+.1%}" if t else "–"
        scratch_cost = f"{b['cost'] / 1000:,.0f}" if b else "–"
        lines.append(
            f"| {r['session']} | {r['window'] // 1000}k | {o['turns']} | {o['first_managed']} "
            f"| **{o['prefix_changes']}** / {t.get('prefix_changes', '–')} / {b.get('prefix_changes', '–')} "
            f"| {o['bound']} | {o['summarizer_calls']} / {t.get('summarizer_calls', '–')} / "
            f"{b.get('summarizer_calls', '–')} "
            f"| {o['read'] / 1000:,.0f} / {o['write'] / 1000:,.0f} "
            f"| **{o['cost'] / 1000:,.0f}** / {t.get('cost', 0) / 1000:,.0f} / {scratch_cost} | {ratio} "
            f"| {o['broken']} | {o['max_utilisation']:.0%} | {r['same_request_with_turn_memo']} |"
        )
        key = (r["session"].split(":")[0], r["window"])
        acc = totals.setdefault(key, [0, 0, 0, 0, 0, 0])
        for k, v in enumerate(
            (o["cost"], t.get("cost", 0), b.get("cost", 0), o["summarizer_calls"], t.get("summarizer_calls", 0), 1)
        ):
            acc[k] += v
    lines.append("")
    for (data, window), (ours, today, scratch, calls, today_calls, n) in totals.items():
        lines.append(
            f"- {data} at {window // 1000}k ({n:.0f} sessions): input cost ours {ours / 1000:,.0f}k, today "
            f"{today / 1000:,.0f}k ({ours / max(today, 1) - 1:+.1%}), recondense {scratch / 1000:,.0f}k; summariser "
            f"calls ours {calls:.0f}, today {today_calls:.0f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--windows", default="64000,32000")
    parser.add_argument("--data", default="claude,gemini")
    parser.add_argument("--baseline", default=BASELINE)
    parser.add_argument("--recondense", default="claude", help="data sets replayed with recondensing too")
    parser.add_argument("--emit", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--window", type=int, default=64000, help=argparse.SUPPRESS)
    parser.add_argument("--scope", default="", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.emit:  # the baseline's subprocess: today's engine (from the archive), records to a file
        import litellm_ctx_hook

        assert not Path(litellm_ctx_hook.__file__).is_relative_to(ROOT), "the baseline must not run this tree"
        Path(args.out).write_text(json.dumps(asyncio.run(engine_turns(args.emit, args.window, args.scope))))
        return
    ref = args.baseline
    run_id = str(int(time.time()))
    rows = []
    for window in (int(w) for w in args.windows.split(",")):
        for data in args.data.split(","):
            rows += asyncio.run(compare(data, window, ref, run_id, data in args.recondense.split(",")))
    print(json.dumps({"baseline": ref, "rows": rows}, indent=1))
    print(table(rows))


if __name__ == "__main__":
    main()
