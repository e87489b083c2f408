"""Every in-process structure that grows with traffic stays within its bound."""

from __future__ import annotations

from typing import Any

from support import settings

from litellm_ctx_hook.analysis.analyzer import MAX_UNKNOWN_MODELS
from litellm_ctx_hook.conversation import Format
from litellm_ctx_hook.engine.engine import ContextEngine


def conversation(n: int, turns: int) -> dict[str, Any]:
    msgs: list[dict[str, Any]] = [{"role": "system", "content": "You are helpful."}]
    for t in range(turns):
        msgs.append({"role": "user", "content": f"question {n}.{t}: " + f"word{n} " * 40})
        msgs.append({"role": "assistant", "content": f"answer {n}.{t}: " + f"fact{t} " * 40})
    msgs.append({"role": "user", "content": f"last {n}"})
    return {"messages": msgs}


async def test_distinct_conversations_never_grow_a_structure_past_its_bound() -> None:
    s = settings(context_cache_size=5, tiktoken_cache_size=50, context_speculative_condensation=False)
    engine = ContextEngine(s)
    for n in range(60):  # every tenth one over its 1,500-token limit: condensed
        body = conversation(n, 12 if n % 10 == 0 else 2)
        await engine.manage(body, Format.OPENAI, "gpt-4o", limit=1500)
    await engine.drain()
    assert engine.counter.cache_size <= 50
    assert len(engine.analyzer) <= 5
    assert len(engine._turns._turns) <= 5
    assert len(engine.condenser._local) <= 5
    assert len(engine.condenser._atom_digests) <= max(1000, 50)
    assert engine.stats.snapshot()["requests"] == 60  # all of them were seen
    assert not engine.condenser._background and not len(engine.speculation)


def test_unknown_model_names_from_clients_are_remembered_within_a_bound() -> None:
    engine = ContextEngine(settings())
    for n in range(MAX_UNKNOWN_MODELS + 50):
        engine.resolve(f"no-such-model-{n}")
    assert 0 < len(engine.analyzer._unknown_models) <= MAX_UNKNOWN_MODELS
