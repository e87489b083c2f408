"""The conversation's last turn: the next turn is counted and managed from its new messages alone,
with exactly the result the full analysis gives."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from strategies import anthropic_conversation, openai_conversation, responses_conversation
from support import anthropic_body, openai_chat, responses_body, settings

from litellm_ctx_hook.adapters import MESSAGES_KEY, adapter_for
from litellm_ctx_hook.analysis.counting import TokenCounter
from litellm_ctx_hook.analysis.risk import ContextRiskLevel
from litellm_ctx_hook.conversation import Format
from litellm_ctx_hook.engine.engine import ContextEngine, Outcome
from litellm_ctx_hook.engine.turns import MAX_NEW, TurnMemo, digest, json_copy, memo_key, restored, serialised
from litellm_ctx_hook.testing.fake_summarizer import KeywordSummarizer

MODELS = {Format.OPENAI: "gpt-4o", Format.ANTHROPIC: "anthropic/claude-opus-4-6", Format.RESPONSES: "gpt-4.1"}
LIMIT = 4000
bodies = st.one_of(
    openai_conversation().map(lambda b: (Format.OPENAI, b)),
    anthropic_conversation().map(lambda b: (Format.ANTHROPIC, b)),
    responses_conversation().map(lambda b: (Format.RESPONSES, b)),
)


@hsettings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(bodies, st.integers(0, 3), st.booleans())
def test_the_count_is_the_full_count_of_the_grown_request(
    case: tuple[Format, dict[str, Any]], drop: int, edit_last: bool
) -> None:
    fmt, body = case
    model = MODELS[fmt]
    counter = TokenCounter(settings())
    memo = TurnMemo(10, 60.0)
    items = body.get(MESSAGES_KEY[fmt])
    if not isinstance(items, list) or not items:
        return  # a Responses string input: always analysed in full
    earlier = {**body, MESSAGES_KEY[fmt]: items[: max(1, len(items) - drop)]}
    key = memo_key(fmt, earlier[MESSAGES_KEY[fmt]], model)
    assert key is not None
    conv = adapter_for(fmt).parse(earlier)
    memo.remember(key, conv, fmt, counter.count(conv, model).messages)
    grown = copy.deepcopy(body)  # a new request: equal data, other objects
    if edit_last and drop:  # an earlier message changed too (a cache marker moved, say)
        grown[MESSAGES_KEY[fmt]][len(earlier[MESSAGES_KEY[fmt]]) - 1] = copy.deepcopy(items[-1])
    if memo_key(fmt, grown[MESSAGES_KEY[fmt]], model) != key:
        return  # the edit reached the messages that identify the conversation: another conversation
    recalled = memo.recall(key, grown, fmt, model, counter)
    assert recalled is not None
    assert recalled.count == TokenCounter(settings()).count(adapter_for(fmt).parse(grown), model)


def test_more_new_messages_than_max_new_or_other_tools_are_analysed_in_full() -> None:
    counter = TokenCounter(settings())
    memo = TurnMemo(10, 60.0)
    body = {"messages": openai_chat(3), "tools": [{"type": "function", "function": {"name": "f"}}]}
    key = memo_key(Format.OPENAI, body["messages"], "gpt-4o")
    assert key is not None
    conv = adapter_for(Format.OPENAI).parse(body)
    memo.remember(key, conv, Format.OPENAI, counter.count(conv, "gpt-4o").messages)
    extra = [{"role": "user", "content": f"more {i}"} for i in range(MAX_NEW + 1)]
    assert memo.recall(key, {**body, "messages": body["messages"] + extra[:MAX_NEW]}, Format.OPENAI, "gpt-4o", counter)
    assert memo.recall(key, {**body, "messages": body["messages"] + extra}, Format.OPENAI, "gpt-4o", counter) is None
    assert memo.recall(key, {**body, "tools": []}, Format.OPENAI, "gpt-4o", counter) is None


def test_json_copy_shares_no_container() -> None:
    value = {"a": [{"b": "x"}], "c": 1}
    copied = json_copy(value)
    assert copied == value and copied is not value
    assert copied["a"] is not value["a"] and copied["a"][0] is not value["a"][0]


def chat(turns: int) -> list[dict[str, Any]]:
    msgs: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a travel agent."},
        {"role": "user", "content": "Plan my trip."},
    ]
    for k in range(turns):
        msgs.append({"role": "assistant", "content": f"Option {k}: flight HAT{100 + k} at ${200 + k}, seat {k % 30}A."})
        msgs.append({"role": "user", "content": f"Noted option {k}; what about day {k + 1}?"})
    return msgs


def engine(**overrides: Any) -> ContextEngine:
    return ContextEngine(settings(condensation_quality_threshold=0.0, **overrides), summarizer=KeywordSummarizer())


def dump(body: Any) -> str:
    return json.dumps(body, sort_keys=True)


async def test_every_turn_is_what_the_full_analysis_gives() -> None:
    eng = engine(context_speculative_condensation=False)
    remembered = 0
    for turns in range(20, 200, 1):
        body = {"messages": chat(turns)}
        hits = eng.stats.turn_memo_hits
        out = await eng.manage(copy.deepcopy(body), Format.OPENAI, "gpt-4o", limit=LIMIT)
        from_memo = eng.stats.turn_memo_hits > hits
        remembered += from_memo
        eng._turns.clear()  # the same request again, analysed in full (the summaries stay cached)
        full = await eng.manage(copy.deepcopy(body), Format.OPENAI, "gpt-4o", limit=LIMIT)
        _assert_same_request(out, full)
        if from_memo:  # the full analysis reused the same cached summaries: so did the memo
            assert (out.cache, out.strategy) == (full.cache, full.strategy)
            timing = ("processing_ms", "analysis_time_ms")
            assert {k: v for k, v in out.metadata.items() if k not in timing} == {
                k: v for k, v in full.metadata.items() if k not in timing
            }
    assert remembered > 120  # most turns never parsed their history


async def test_what_litellm_does_to_a_returned_body_does_not_reach_the_next_turn() -> None:
    eng = engine(context_speculative_condensation=False)
    previous = None
    for turns in range(20, 200, 2):
        out = await eng.manage({"messages": chat(turns)}, Format.OPENAI, "gpt-4o", limit=LIMIT)
        if not out.changed:
            continue
        prefix = dump(out.body["messages"][:3])
        assert "cache_control" not in prefix
        if out.metadata["actions"][0].startswith("reuse"):
            assert prefix == previous
        previous = prefix
        for m in out.body["messages"]:  # LiteLLM rewrites the request in place
            m["content"] = [{"type": "text", "text": str(m["content"]), "cache_control": {"type": "ephemeral"}}]
    assert eng.stats.turn_memo_hits > 40


async def test_an_edited_history_is_analysed_in_full() -> None:
    eng = engine(context_speculative_condensation=False)
    for turns in range(20, 120, 2):
        await eng.manage({"messages": chat(turns)}, Format.OPENAI, "gpt-4o", limit=LIMIT)
    edited = chat(120)
    edited[10]["content"] = "Actually, I changed my mind about this option."
    hits = eng.stats.turn_memo_hits
    out = await eng.manage({"messages": edited}, Format.OPENAI, "gpt-4o", limit=LIMIT)
    assert eng.stats.turn_memo_hits == hits
    assert out.changed and "reuse" not in " ".join(out.metadata["actions"])  # the old summary no longer applies


async def test_observe_mode_and_other_tenants_never_get_a_remembered_prefix() -> None:
    eng = engine(context_speculative_condensation=False)
    for turns in range(20, 120, 2):
        await eng.manage({"messages": chat(turns)}, Format.OPENAI, "gpt-4o", limit=LIMIT, scope="team-a")
    body = {"messages": chat(121)}
    observed = await eng.manage(body, Format.OPENAI, "gpt-4o", limit=LIMIT, scope="team-a", observe_only=True)
    assert observed.body is body and not observed.changed and observed.metadata["observe_only"]
    hits = eng.stats.turn_memo_hits
    other = await eng.manage(body, Format.OPENAI, "gpt-4o", limit=LIMIT, scope="team-b")
    assert eng.stats.turn_memo_hits == hits and other.cache == "miss"


async def test_speculation_prepares_the_warning_turn() -> None:
    eng = engine()
    turns = 20
    while eng.analyze({"messages": chat(turns)}, Format.OPENAI, "gpt-4o", limit=LIMIT).result.risk_level is (
        ContextRiskLevel.SAFE
    ):
        turns += 1
    out = await eng.manage({"messages": chat(turns)}, Format.OPENAI, "gpt-4o", limit=LIMIT)
    assert out.risk is ContextRiskLevel.CAUTION and not out.changed
    await eng.drain()
    assert eng.stats.speculative_condensations == 1
    hits, misses = eng.stats.turn_memo_hits, eng.stats.analysis_misses
    turns_after = 0
    while True:
        turns += 1
        turns_after += 1
        body = {"messages": chat(turns)}
        out = await eng.manage(copy.deepcopy(body), Format.OPENAI, "gpt-4o", limit=LIMIT)
        if out.risk.rank >= ContextRiskLevel.WARNING.rank:
            break
    # the CAUTION turns and the WARNING turn: from the memo, none analysed in full
    assert eng.stats.analysis_misses == misses and eng.stats.turn_memo_hits == hits + turns_after
    assert out.changed and out.cache == "hit" and out.metadata["actions"][0].startswith("reuse")
    eng._turns.clear()
    full = await eng.manage(body, Format.OPENAI, "gpt-4o", limit=LIMIT)
    assert dump(out.body) == dump(full.body)


GROWING: dict[Format, Callable[[int], dict[str, Any]]] = {
    Format.OPENAI: lambda k: {"model": "gpt-4o", "messages": openai_chat(k, words=30)},
    Format.ANTHROPIC: lambda k: anthropic_body(k, words=30),
    Format.RESPONSES: lambda k: responses_body(k, words=30),
}


@pytest.mark.parametrize("fmt", list(GROWING), ids=lambda f: f.value)
async def test_the_same_in_every_format(fmt: Format) -> None:
    eng = engine(context_speculative_condensation=False)
    model = MODELS[fmt]
    limit = int(eng.analyze(GROWING[fmt](30), fmt, model).count.total / 0.85)
    managed = 0
    for k in range(5, 70):
        body = GROWING[fmt](k)
        hits = eng.stats.turn_memo_hits
        out = await eng.manage(copy.deepcopy(body), fmt, model, limit=limit)
        eng._turns.clear()
        full = await eng.manage(copy.deepcopy(body), fmt, model, limit=limit)
        assert dump(out.body) == dump(full.body), k
        assert (out.tokens_before, out.tokens_after, out.risk) == (full.tokens_before, full.tokens_after, full.risk)
        managed += out.changed and eng.stats.turn_memo_hits > hits
    assert managed > 10


async def test_a_cleared_prefix_is_sent_again_while_the_same_clearing_reaches_the_target() -> None:
    eng = engine(context_speculative_condensation=False)

    def grow(k: int) -> dict[str, Any]:  # long old tool output, then a chat: the same clearing holds a while
        chat = [{"role": "assistant" if i % 2 else "user", "content": f"Short turn {i}."} for i in range(2 * k)]
        return {"model": "gpt-4o", "messages": openai_chat(12, words=200) + chat}

    limit = int(eng.analyze(grow(0), Format.OPENAI, "gpt-4o").count.total / 0.85)
    kinds = []
    for k in range(0, 40):
        body = grow(k)
        hits = eng.stats.turn_memo_hits
        out = await eng.manage(copy.deepcopy(body), Format.OPENAI, "gpt-4o", limit=limit)
        eng._turns.clear()
        full = await eng.manage(copy.deepcopy(body), Format.OPENAI, "gpt-4o", limit=limit)
        assert dump(out.body) == dump(full.body)
        if eng.stats.turn_memo_hits > hits and out.changed:  # the full analysis did the same again
            assert out.metadata["actions"] == full.metadata["actions"]
            kinds.append(out.metadata["actions"][0].split(":")[0])
    assert kinds.count("clear") >= 5


# -- what the memo holds: nothing a request or its result can change --------------------------------
def test_digests_depend_on_values_and_their_order_not_on_shared_objects() -> None:
    shared = "x" * 300
    a = {"role": "user", "content": [{"type": "text", "text": shared}, {"type": "text", "text": shared}]}
    b = json.loads(json.dumps(a))  # equal values, other objects (none shared)
    assert digest(a) == digest(b)
    assert digest(a) != digest({**a, "content": [*a["content"][::-1], {"type": "text", "text": "y"}]})
    assert digest({"a": 1, "b": 2}) != digest({"b": 2, "a": 1})  # a reordered body: analysed in full
    assert digest({"n": 1}) != digest({"n": True}) != digest({"n": 1.0})  # JSON types kept apart
    assert restored(serialised(a)) == a and restored(serialised(a)) is not a


def test_values_that_are_not_plain_data_are_not_remembered() -> None:
    deep: Any = "leaf"
    for _ in range(5000):
        deep = [deep]
    assert memo_key(Format.OPENAI, [{"role": "user", "content": deep}], "gpt-4o") is None
    assert memo_key(Format.OPENAI, [{"role": "user", "content": object()}], "gpt-4o") is None


def _mutate(value: Any) -> None:
    """What LiteLLM or a caller may do to a request it was given: every container changed in place."""
    if isinstance(value, dict):
        for k in list(value):
            if isinstance(value[k], str):
                value[k] = value[k] + " (changed)"
            else:
                _mutate(value[k])
        value["cache_control"] = {"type": "ephemeral"}
    elif isinstance(value, list):
        for item in value:
            _mutate(item)
        value.append({"type": "text", "text": "appended"})


TOOLS = [{"type": "function", "function": {"name": "bash", "description": "Run a command.", "parameters": {}}}]


@pytest.mark.parametrize("fmt", list(GROWING), ids=lambda f: f.value)
async def test_changing_a_returned_body_and_its_request_in_place_never_reaches_the_memo(fmt: Format) -> None:
    eng = engine(context_speculative_condensation=False)
    model = MODELS[fmt]
    limit = int(eng.analyze(GROWING[fmt](30), fmt, model).count.total / 0.85)
    memo_turns = managed = 0
    for k in range(5, 70):
        pristine = {**GROWING[fmt](k), "tools": copy.deepcopy(TOOLS)}
        request = copy.deepcopy(pristine)
        hits = eng.stats.turn_memo_hits
        out = await eng.manage(request, fmt, model, limit=limit)
        from_memo = eng.stats.turn_memo_hits > hits
        memo_turns += from_memo
        managed += from_memo and out.changed
        eng_full = engine(context_speculative_condensation=False)  # the same request, analysed in full
        eng_full.condenser = eng.condenser  # with the same summaries at hand
        full = await eng_full.manage(copy.deepcopy(pristine), fmt, model, limit=limit)
        assert dump(out.body) == dump(full.body), k
        assert (out.tokens_before, out.tokens_after, out.risk) == (full.tokens_before, full.tokens_after, full.risk)
        _mutate(out.body)  # the result (the managed prefix's messages among them)...
        _mutate(request)  # ...and the request itself (its system prompt and tools too)
    assert memo_turns > 40 and managed > 5


async def test_a_remembered_prefix_is_new_objects_on_every_turn() -> None:
    eng = engine(context_speculative_condensation=False)
    sent: list[Any] = []
    for turns in range(20, 200, 2):
        hits = eng.stats.turn_memo_hits
        out = await eng.manage({"messages": chat(turns)}, Format.OPENAI, "gpt-4o", limit=LIMIT)
        if out.changed and eng.stats.turn_memo_hits > hits:
            sent.append(out.body["messages"][0])
    assert len(sent) > 20
    assert len({id(m) for m in sent}) == len(sent)  # never the same dict twice: a change to one stays in it


# -- the memo's path is the full analysis's, on any growth --------------------------------------------
def _grow(rng: Any, messages: list[dict[str, Any]], step: int, op: str) -> list[dict[str, Any]]:
    out = copy.deepcopy(messages)  # the client's next request: equal data, other objects
    if op == "edit" and len(out) > 6:
        i = rng.randrange(3, len(out) - 1)
        out[i] = {**out[i], "content": f"{out[i].get('content')} (edited at {step})"}
    elif op == "marker" and out:
        last = out[-1]
        out[-1] = {**last, "content": [{"type": "text", "text": str(last.get("content")), "cache_control": {}}]}
    for j in range(rng.randint(1, 3) if op != "many" else MAX_NEW + 1):
        k = len(out)
        out.append({"role": "assistant", "content": f"Option {k}: flight HAT{k} at ${200 + k}, seat {k % 30}A."})
        out.append({"role": "user", "content": f"Noted {k} (step {step}, {j}); what about day {k + 1}?"})
    return out


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    st.randoms(use_true_random=False),
    st.lists(st.sampled_from(["append", "append", "append", "edit", "marker", "many"]), min_size=8, max_size=30),
)
def test_the_memo_path_is_the_full_path_on_random_growth(rng: Any, ops: list[str]) -> None:
    asyncio.run(_random_growth(rng, ops))


async def _random_growth(rng: Any, ops: list[str]) -> None:
    eng = engine(context_speculative_condensation=False)
    messages = chat(40)
    for step, op in enumerate(ops):
        messages = _grow(rng, messages, step, op)
        body = {"messages": messages}
        out = await eng.manage(copy.deepcopy(body), Format.OPENAI, "gpt-4o", limit=LIMIT)
        full_engine = engine(context_speculative_condensation=False)
        full_engine.condenser = eng.condenser  # the summaries the memo's engine made, at hand
        full = await full_engine.manage(copy.deepcopy(body), Format.OPENAI, "gpt-4o", limit=LIMIT)
        _assert_same_request(out, full)
        _mutate(out.body)


def _assert_same_request(out: Outcome, full: Outcome) -> None:
    """The memo's result is the full analysis's: the same body, counts, risk and prefix flag."""
    assert dump(out.body) == dump(full.body)
    assert (out.changed, out.tokens_before, out.tokens_after, out.risk) == (
        full.changed,
        full.tokens_before,
        full.tokens_after,
        full.risk,
    )
