"""Invariants of context management over generated conversations in all three formats."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from strategies import anthropic_conversation, openai_conversation, responses_conversation
from support import settings

from litellm_ctx_hook.adapters import adapter_for
from litellm_ctx_hook.analysis.risk import ContextRiskLevel
from litellm_ctx_hook.conversation import Format, Message, Role
from litellm_ctx_hook.engine.engine import ContextEngine, Outcome
from litellm_ctx_hook.errors import ContextWindowExceededError
from litellm_ctx_hook.planning.atoms import group_atoms
from litellm_ctx_hook.planning.plan import fitting_regions

ENGINE = ContextEngine(settings(condensation_min_messages=1))
MODELS = {Format.OPENAI: "gpt-4o", Format.ANTHROPIC: "anthropic/claude-sonnet-4-5", Format.RESPONSES: "gpt-4.1"}


def _parts(m: Message) -> tuple[tuple[str, str, str | None], ...]:
    return tuple((p.kind.value, p.text, p.tool_id) for p in m.parts)


def _inside(small: tuple[Any, ...], big: tuple[Any, ...]) -> bool:
    return any(big[i : i + len(small)] == small for i in range(len(big) - len(small) + 1))


async def _manage(body: dict[str, Any], fmt: Format, model: str, limit: int) -> Outcome:
    """One managed request, with any speculative work it started finished before the loop closes."""
    try:
        return await ENGINE.manage(body, fmt, model, limit=limit)
    finally:
        await ENGINE.drain()


def check_invariants(fmt: Format, body: dict[str, Any], limit: int) -> None:
    model = MODELS[fmt]
    adapter = adapter_for(fmt)
    before = ENGINE.analyze(body, fmt, model, limit=limit)
    try:
        out = asyncio.run(_manage(body, fmt, model, limit))
    except ContextWindowExceededError as exc:
        # Only when what must be kept cannot fit: the system prompt and tools alone, or pinned turns
        # that even middle cuts could not shrink enough.
        assert exc.limit == limit and exc.tokens > limit
        return
    conv = adapter.parse(out.body)
    after = ENGINE.counter.count(conv, model).total
    assert after == out.tokens_after
    assert after <= limit, "output must fit"
    assert after <= before.count.total, "never more tokens than the input"

    if before.result.risk_level.rank < ContextRiskLevel.WARNING.rank:
        assert out.body is body and not out.changed, "SAFE/CAUTION input is returned unchanged"

    original = before.conversation.messages
    cut = "cut:1" in out.metadata.get("actions", [])
    if not cut:  # the pinned turns, fewer of the recent ones when they alone exceed the limit
        fixed = before.count.total - sum(before.count.messages)  # the system prompt and tools
        reg = fitting_regions(original, ENGINE.settings, before.count.messages, limit - fixed)
        for i in range(len(original)):
            if reg.pinned(i):
                want = _parts(original[i])
                assert any(_parts(m) == want or _inside(want, _parts(m)) for m in conv.messages), f"pinned {i} lost"

    # Tool pairs intact: results only for calls, calls answered unless the client left them open.
    atoms = group_atoms(conv.messages)
    assert not atoms.orphan_results
    assert set(atoms.unanswered_calls) <= set(group_atoms(original).unanswered_calls)

    if fmt is Format.ANTHROPIC:
        roles = [m.role for m in conv.messages]
        assert roles[0] is Role.USER
        assert all(a is not b for a, b in itertools.pairwise(roles))

    again = asyncio.run(_manage(out.body, fmt, model, limit))
    if again.risk.rank < ContextRiskLevel.WARNING.rank:
        assert not again.changed and again.body is out.body, "managing the output again changes nothing"
    else:  # the pinned messages alone are above the target: the output only had to fit the limit
        assert again.tokens_after <= min(limit, out.tokens_after)


def _limit(body: dict[str, Any], fmt: Format, fraction: float) -> int:
    total = ENGINE.analyze(body, fmt, MODELS[fmt], limit=10**9).count.total
    return max(50, int(total * fraction))


fractions = st.floats(0.15, 1.4)
common = hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@common
@given(openai_conversation(), fractions)
def test_openai_invariants(body: dict[str, Any], fraction: float) -> None:
    check_invariants(Format.OPENAI, body, _limit(body, Format.OPENAI, fraction))


@common
@given(anthropic_conversation(), fractions)
def test_anthropic_invariants(body: dict[str, Any], fraction: float) -> None:
    check_invariants(Format.ANTHROPIC, body, _limit(body, Format.ANTHROPIC, fraction))


@common
@given(responses_conversation(), fractions)
def test_responses_invariants(body: dict[str, Any], fraction: float) -> None:
    check_invariants(Format.RESPONSES, body, _limit(body, Format.RESPONSES, fraction))


def test_impossible_request_is_rejected_with_counts() -> None:
    body = {"messages": [{"role": "system", "content": "rule " * 3000}, {"role": "user", "content": "hi"}]}
    with pytest.raises(ContextWindowExceededError) as exc:
        asyncio.run(ENGINE.manage(body, Format.OPENAI, "gpt-4o", limit=1000))
    assert exc.value.tokens > 1000 and exc.value.limit == 1000
    assert "1000" in str(exc.value)
