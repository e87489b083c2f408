"""A pinned head near the target: the newest turn stays verbatim while anything older can give way.

The shape of a coding agent at a small window: a system prompt, tools and a task that fill a large
share of the room, then tool outputs read one after another. Nothing pinned is cut while clearing,
condensing or dropping older turns fits; an oversized ``max_tokens`` gives way before any of them.
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from strategies import agent_with_large_head
from support import settings

from litellm_ctx_hook.adapters import MESSAGES_KEY, adapter_for
from litellm_ctx_hook.cache.store import SummaryCache
from litellm_ctx_hook.conversation import Format, Role
from litellm_ctx_hook.engine.engine import ContextEngine, Outcome
from litellm_ctx_hook.errors import ContextWindowExceededError
from litellm_ctx_hook.planning.atoms import group_atoms
from litellm_ctx_hook.planning.plan import fitting_regions, regions
from litellm_ctx_hook.settings import Settings

MODEL = "anthropic/claude-sonnet-4-5"
WINDOW = 72_000
MAX_TOKENS = 32_000  # what Claude Code asks on every turn: 40k of the window left for input
READS = 14


class Router:
    """One deployment with a 72k window, as a proxy's ``model_list`` would state it."""

    def get_model_list(self, model_name: str | None = None) -> list[dict[str, Any]]:
        return [{"model_name": "cc", "litellm_params": {"model": MODEL}, "model_info": {"max_input_tokens": WINDOW}}]


def _prose(words: int, seed: int) -> str:
    r = random.Random(seed)
    vocab = [
        "the",
        "agent",
        "reads",
        "each",
        "file",
        "then",
        "checks",
        "the",
        "test",
        "build",
        "error",
        "warning",
        "config",
        "module",
        "function",
    ]
    return " ".join(r.choice(vocab) for _ in range(words))


def _read(k: int) -> str:
    """About 5,000 tokens of a source file, with the one line the agent is looking for at its end."""
    lines = [
        f"{i:5d}\tdef handler_{k}_{i}(request, ctx):  # value={i * k} sum={(i * 7919 + k) % 65536:04x}"
        for i in range(180)
    ]
    return "\n".join([*lines, f"NOTE f{k}: id=NEEDLE-{k:03d}"])


def claude_code_body(reads: int) -> dict[str, Any]:
    """A Claude Code request after ``reads`` file reads: ~5k tokens of system prompt, ~14.5k of
    tools and ~3.3k of a first message (23k pinned head), then ~5k tokens a read."""
    system = [
        {"type": "text", "text": "You are Claude Code. " + _prose(4600, 1), "cache_control": {"type": "ephemeral"}}
    ]
    tools = [
        {"name": f"Tool{t}", "description": _prose(900, 10 + t), "input_schema": {"type": "object"}} for t in range(14)
    ]
    reminder = {"type": "text", "text": "<system-reminder>" + _prose(3000, 2) + "</system-reminder>"}
    msgs: list[dict[str, Any]] = [
        {"role": "user", "content": [reminder, {"type": "text", "text": "Read f0 to f20 and report each note."}]}
    ]
    for k in range(reads):
        use = {"type": "tool_use", "id": f"toolu_{k:03d}", "name": "Read", "input": {"file_path": f"/repo/f{k}.py"}}
        msgs.append({"role": "assistant", "content": [{"type": "text", "text": f"Reading f{k}."}, use]})
        result = {"type": "tool_result", "tool_use_id": f"toolu_{k:03d}", "content": _read(k)}
        msgs.append({"role": "user", "content": [result]})
    return {"model": "cc", "max_tokens": MAX_TOKENS, "system": system, "tools": tools, "messages": msgs}


def verbatim_reads(body: dict[str, Any], out: Outcome) -> str:
    """One character per read, oldest first: ``V`` when its result reached the output unchanged."""
    sent = {json.dumps(m) for m in out.body["messages"]}
    return "".join("V" if json.dumps(m) in sent else "." for m in body["messages"][2::2])


def engine(**overrides: Any) -> ContextEngine:
    return ContextEngine(settings(context_speculative_condensation=False, **overrides))


async def replay(e: ContextEngine, reads: int = READS) -> list[tuple[dict[str, Any], Outcome]]:
    outs = []
    for n in range(1, reads + 1):
        body = claude_code_body(n)
        outs.append((body, await e.manage(body, Format.ANTHROPIC, "cc", router=Router())))
    return outs


def limit_of(out: Outcome) -> int:
    return int(out.metadata["limit"])


async def test_claude_code_at_72k_keeps_its_newest_reads_and_lowers_max_tokens_first() -> None:
    e = engine()
    floor = e.settings.output_tokens_floor
    outs = await replay(e)
    granted = []
    for n, (body, out) in enumerate(outs, 1):
        kept = verbatim_reads(body, out)
        assert kept.endswith("V"), f"read {n}: the newest result was changed: {kept}"
        assert out.strategy.value != "EMERGENCY_TRUNCATION", (n, out.metadata.get("actions"))
        assert out.tokens_after <= limit_of(out) == WINDOW - out.body["max_tokens"]
        assert not out.metadata.get("cut")
        granted.append(out.body["max_tokens"])
        if n >= 4:
            assert kept.endswith("VVVV"), f"read {n}: {kept}"  # the default pinned tail, whole
    assert granted[0] == MAX_TOKENS  # the first request is below WARNING as it is
    assert all(floor <= g <= MAX_TOKENS for g in granted)
    assert granted == sorted(granted, reverse=True) and granted[-1] == floor
    # Lowered before anything else: the messages are the client's own until the floor is reached.
    for body, out in outs:
        if floor < out.body["max_tokens"] < MAX_TOKENS:
            assert out.body["messages"] == body["messages"]
            assert out.metadata["actions"] == [f"max_tokens:{MAX_TOKENS}->{out.body['max_tokens']}"]
    assert e.stats.turn_memo_hits > 0  # the turn memo answered some of these turns


async def test_without_lowering_old_output_gives_way_and_the_newest_reads_stay() -> None:
    """Max_tokens kept (floor 0): 40k for a 23k head. Clearing the older reads fits; nothing pinned is cut."""
    outs = await replay(engine(output_tokens_floor=0))
    for n, (body, out) in enumerate(outs, 1):
        kept = verbatim_reads(body, out)
        assert out.body["max_tokens"] == MAX_TOKENS and limit_of(out) == WINDOW - MAX_TOKENS
        assert out.tokens_after <= limit_of(out)
        assert kept.endswith("VVV" if n >= 3 else "V" * n), f"read {n}: {kept}"
        assert out.strategy.value != "EMERGENCY_TRUNCATION" and not out.metadata.get("cut"), out.metadata
        if n >= 4:  # the target (24k) is out of reach of a 23k head and three 5k reads: fits the limit
            assert out.changed and out.metadata["actions"][0].split(":")[0] in {"clear", "condense", "extend"}


async def test_the_turn_memo_and_a_fresh_replica_decide_alike() -> None:
    """The same bodies through an engine that remembers each turn and through a new engine each
    turn (sharing the summary cache, as replicas share Redis): the same request upstream."""
    for overrides in ({}, {"output_tokens_floor": 0}):
        s: Settings = settings(context_speculative_condensation=False, **overrides)
        cache = SummaryCache(s)
        memo = ContextEngine(s, cache=cache)
        for n in range(1, READS + 1):
            body = claude_code_body(n)
            a = await memo.manage(body, Format.ANTHROPIC, "cc", router=Router())
            b = await ContextEngine(s, cache=cache).manage(body, Format.ANTHROPIC, "cc", router=Router())
            assert json.dumps(a.body) == json.dumps(b.body), (overrides, n, a.metadata, b.metadata)
            # (their labels may differ: the replica finds the memo's new summary in the cache: "reuse")
            assert a.tokens_after == b.tokens_after and a.metadata.get("max_tokens") == b.metadata.get("max_tokens")
        if not overrides:  # (without lowering every managed turn is a new fit: analysed in full)
            assert memo.stats.turn_memo_hits > 0


# -- any agent whose pinned head is 30-70% of the room ---------------------------------------------
FORMATS = {"openai": Format.OPENAI, "anthropic": Format.ANTHROPIC, "responses": Format.RESPONSES}
PROPERTY_ENGINE = engine(condensation_min_messages=1)


def _raws(body: dict[str, Any], fmt: Format) -> list[Any]:
    return list(body[MESSAGES_KEY[fmt]])


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(agent_with_large_head())
def test_the_newest_turn_is_kept_and_nothing_pinned_is_cut_while_something_else_fits(
    case: tuple[dict[str, Any], str, float],
) -> None:
    body, route, share = case
    fmt = FORMATS[route]
    e = PROPERTY_ENGINE
    counted = e.analyze(body, fmt, "gpt-4o", limit=10**9)
    original = counted.conversation.messages
    per = counted.count.messages
    fixed = counted.count.total - sum(per)  # system prompt, tools, framing
    head = fixed + sum(per[i] for i in range(regions(original, e.settings).head_end))
    limit = int(head / share)
    try:
        out = asyncio.run(e.manage(body, fmt, "gpt-4o", limit=limit))
    except ContextWindowExceededError:
        out = None
    last = group_atoms(original).atoms[-1].indices
    fitted = fitting_regions(original, e.settings, per, limit - fixed)
    pinned_need = fixed + sum(t for i, t in enumerate(per) if fitted.pinned(i))
    # The newest turn may lose its middle only when it alone is larger than what is left once
    # everything else has given way: the system prompt and tools stay, other pinned messages can
    # be cut to a head and a tail (CUT_MIN_KEEP tokens and the cut mark: under 120 tokens).
    system = fixed + sum(per[i] for i, m in enumerate(original) if m.role is Role.SYSTEM)
    others = sum(
        min(per[i], 120)
        for i, m in enumerate(original)
        if fitted.pinned(i) and i not in last and m.role is not Role.SYSTEM
    )
    newest_alone_too_large = sum(per[i] for i in last) > limit - system - others
    if out is None:  # only when what must stay cannot fit whole
        assert pinned_need > limit
        return
    assert out.tokens_after <= limit
    raws, sent = _raws(body, fmt), _raws(dict(out.body), fmt)
    if not newest_alone_too_large:
        n = len(last)
        assert json.dumps(sent[-n:]) == json.dumps(raws[-n:]), "the newest turn reached the upstream as it was"
    cut = out.metadata.get("cut", [])
    if pinned_need <= limit:
        assert not cut and "cut:1" not in out.metadata.get("actions", []), "a pinned message was cut"
    conv = adapter_for(fmt).parse(dict(out.body))
    atoms = group_atoms(conv.messages)
    assert not atoms.orphan_results
    assert set(atoms.unanswered_calls) <= set(group_atoms(original).unanswered_calls)
