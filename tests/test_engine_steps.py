"""Management in whole steps over a growing agent session: few prefix changes, the same bytes on
every replica, with or without the turn memo."""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import secrets
from pathlib import Path
from typing import Any

import pytest
from engine_worker import manage_turns_in_process
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from support import settings

from litellm_ctx_hook.conversation import Format
from litellm_ctx_hook.engine.engine import ContextEngine, Outcome
from litellm_ctx_hook.planning.steps import step_bound, warning_tokens

LIMIT = 8_000
MODEL = "gpt-4o"


def agent_session(sizes: list[int], tag: str = "") -> list[dict[str, Any]]:
    """An agent run: a task, then one tool call and its result per size (``size`` lines of output)."""
    msgs: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a coding agent."},
        {"role": "user", "content": f"Fix the failing test {tag}."},
    ]
    for k, size in enumerate(sizes):
        call = {
            "id": f"c{k}",
            "type": "function",
            "function": {"name": "bash", "arguments": f'{{"cmd": "cat f{k}.py"}}'},
        }
        msgs.append({"role": "assistant", "content": f"Reading f{k}.py.", "tool_calls": [call]})
        lines = "\n".join(f"line {i} of f{k}.py: value_{k}_{i} = {i * k}" for i in range(size))
        msgs.append({"role": "tool", "tool_call_id": f"c{k}", "content": lines})
    return msgs


def requests(sizes: list[int], tag: str = "") -> list[dict[str, Any]]:
    """Request k: the session up to its k-th assistant call (the client sends its whole history)."""
    msgs = agent_session(sizes, tag)
    return [{"messages": msgs[:k]} for k, m in enumerate(msgs) if m["role"] == "assistant"] + [{"messages": msgs}]


async def replay(engine: ContextEngine, bodies: list[dict[str, Any]]) -> list[Outcome]:
    return [await engine.manage(b, Format.OPENAI, MODEL, limit=LIMIT) for b in bodies]


def sent(out: Outcome) -> list[str]:
    return [json.dumps(m) for m in out.body["messages"]]


def prefix_changes(outs: list[Outcome]) -> tuple[int, int, int | None]:
    """Prefix changes after the first managed turn, the growth over those turns, the first managed turn."""
    first = next((i for i, o in enumerate(outs) if o.changed), None)
    changes = growth = 0
    for prev, cur in zip(outs[(first or len(outs)) :], outs[(first or len(outs)) + 1 :], strict=False):
        growth += max(0, cur.tokens_before - prev.tokens_before)
        p, c = sent(prev), sent(cur)
        changed = c[: len(p)] != p
        changes += changed
        assert cur.prefix_changed is changed, "x-ctx-prefix-changed must say what was sent"
    return changes, growth, first


@hsettings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=2, max_value=40), min_size=25, max_size=70))
async def test_a_growing_session_changes_its_prefix_once_per_step_on_every_replica(sizes: list[int]) -> None:
    bodies = requests(sizes)
    fresh = await replay(ContextEngine(settings(context_cache_size=0, context_speculative_condensation=False)), bodies)
    memo = await replay(ContextEngine(settings(context_speculative_condensation=False)), bodies)
    assert [sent(o) for o in fresh] == [sent(o) for o in memo]  # the turn memo changes nothing that is sent
    warning = warning_tokens(LIMIT, settings())
    for out in fresh:
        assert out.tokens_after <= LIMIT
        if out.changed and out.strategy.value != "EMERGENCY_TRUNCATION":
            assert out.tokens_after < warning
    changes, growth, first = prefix_changes(fresh)
    if first is not None:
        assert changes <= step_bound(growth, LIMIT, settings()), (changes, growth)


async def test_clearing_reaches_the_target_at_once_and_then_clears_the_same_parts() -> None:
    sizes = [25] * 60
    outs = await replay(ContextEngine(settings(context_speculative_condensation=False)), requests(sizes))
    cleared = [o for o in outs if o.metadata.get("actions", [""])[0].startswith("clear")]
    assert len(cleared) >= 10
    target = int(settings().condensation_target_ratio * LIMIT)
    first = cleared[0]
    assert first.tokens_after <= target + (first.tokens_before - warning_tokens(LIMIT, settings()))
    same_step = [o for o in cleared[1:] if not o.prefix_changed]
    assert same_step, "the turns after a clearing step clear the same parts"
    changes, growth, _ = prefix_changes(outs)
    assert changes <= step_bound(growth, LIMIT, settings())
    assert changes < len(cleared) // 2  # not a new part cleared on every turn


async def test_a_result_larger_than_the_window_is_cut_while_newest_then_condensed_once() -> None:
    # One tool result larger than the window among small ones: while it is the newest atom only its
    # middle can go; afterwards the atoms up to it are condensed once, not cut anew on every turn.
    sizes = [5, 5, 5, 700, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5]
    bodies = requests(sizes)
    outs = await replay(ContextEngine(settings(context_speculative_condensation=False)), bodies)
    assert all(o.tokens_after <= LIMIT for o in outs)
    big = next(k for k, o in enumerate(outs) if o.tokens_before > LIMIT)
    assert "cut:1" in outs[big].metadata["actions"]
    assert not any("cut:1" in o.metadata.get("actions", []) for o in outs[big + 1 :])
    for body, out in zip(bodies[big + 1 :], outs[big + 1 :], strict=True):
        assert sent(out)[-2:] == [json.dumps(m) for m in body["messages"][-2:]], "the newest atom stays verbatim"
    changes, growth, _ = prefix_changes(outs)
    assert changes <= step_bound(growth, LIMIT, settings()), (changes, growth)


@pytest.mark.redis
def test_two_fresh_replicas_send_the_same_bytes_after_a_clearing_step(redis_url: str, tmp_path: Path) -> None:
    bodies = requests([25] * 60, tag=secrets.token_hex(4))
    engine = ContextEngine(settings(context_cache_size=0, context_speculative_condensation=False))
    outs = asyncio.run(replay(engine, bodies))
    # A clearing step, then a turn of the same step: replica A saw every turn up to it, B only that turn.
    k = next(
        i
        for i in range(1, len(outs) - 1)
        if outs[i].prefix_changed
        and outs[i].metadata["actions"][0].startswith("clear")
        and not outs[i + 1].prefix_changed
    )
    scope = f"steps-{secrets.token_hex(4)}"
    ctx = multiprocessing.get_context("spawn")
    jobs = {"a": bodies[: k + 2], "b": bodies[k + 1 : k + 2]}
    procs = []
    for name, job in jobs.items():
        out = tmp_path / f"{name}.json"
        p = ctx.Process(target=manage_turns_in_process, args=(redis_url, json.dumps(job), LIMIT, scope, str(out)))
        p.start()
        procs.append(p)
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    a = json.loads((tmp_path / "a.json").read_text())
    b = json.loads((tmp_path / "b.json").read_text())
    assert b[-1] == a[-1]  # byte-identical request for the same turn
    step, after = json.loads(a[k]), json.loads(b[-1])
    assert after[: len(step)] == step  # the clearing step's request is its prefix ...
    assert b[-1].startswith(a[k][:-1])  # ... byte for byte (its JSON less the closing bracket)
