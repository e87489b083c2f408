"""The seed Python API (analysis and management halves)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import pytest
from support import anthropic_body, openai_chat, responses_body, settings

from litellm_ctx_hook import api
from litellm_ctx_hook.adapters import adapter_for
from litellm_ctx_hook.analysis.counting import TokenCounter
from litellm_ctx_hook.analysis.risk import ContextManagementStrategy, ContextRiskLevel
from litellm_ctx_hook.conversation import Format
from litellm_ctx_hook.engine.engine import ContextEngine


@pytest.fixture(autouse=True)
def fresh_engine() -> Iterator[None]:
    api.set_default_engine(ContextEngine(settings()))
    yield
    api.set_default_engine(None)


def test_analysis_half() -> None:
    msgs = openai_chat(10)
    r = api.analyze_context_state(msgs, model="gpt-4o", max_tokens=3000)
    assert r.limit_tokens == 3000 and r.messages_count == len(msgs)
    info = api.get_context_info(msgs, model="gpt-4o")
    expected = TokenCounter(settings()).count(adapter_for("openai").parse({"messages": msgs}), "gpt-4o").total
    assert info["estimated_tokens"] == expected == r.current_tokens
    assert info["hard_limit"] == 128000 - 4096
    assert api.should_condense_context(msgs, model="gpt-4o", max_tokens=expected) is True
    assert api.get_context_management_strategy(msgs, model="gpt-4o", max_tokens=expected) is (
        ContextManagementStrategy.CONDENSATION_AGGRESSIVE
    )
    assert api.should_condense_context(msgs, model="gpt-4o") is False


def test_generic_model_uses_specification_windows() -> None:
    assert api.get_context_info([{"role": "user", "content": "hi"}])["hard_limit"] == 200_000 - 4096
    assert api.get_context_info([{"role": "user", "content": "hi"}], is_vision=True)["hard_limit"] == 65_536 - 4096


def test_anthropic_and_responses_accept_list_or_body() -> None:
    body = anthropic_body(3)
    whole = api.get_context_info(body, format="anthropic", model="claude-sonnet-4-5")
    only_messages = api.get_context_info(body["messages"], format="anthropic", model="claude-sonnet-4-5")
    assert whole["estimated_tokens"] > only_messages["estimated_tokens"]  # the system prompt counts
    rbody = responses_body(3)
    assert (
        api.get_context_info(rbody, format="responses", model="gpt-4.1")["estimated_tokens"]
        > api.get_context_info(rbody["input"], format="responses", model="gpt-4.1")["estimated_tokens"]
    )


def test_analysis_cache_and_clear() -> None:
    msgs = openai_chat(5)
    api.analyze_context_state(msgs, model="gpt-4o")
    api.analyze_context_state(msgs, model="gpt-4o")
    stats = api.get_context_performance_stats()
    assert stats["analysis_cache"]["hits"] == 1
    assert stats["cache_size"] > 0
    api.clear_context_caches()
    stats = api.get_context_performance_stats()
    assert stats["cache_size"] == 0 and stats["analysis_cache"]["size"] == 0


async def test_management_half_openai() -> None:
    msgs = openai_chat(60, words=5)  # tool outputs too small to be worth clearing: condensation
    result = await api.apply_intelligent_context_management(msgs, max_tokens=4000, model="gpt-4o")
    assert result.risk_level.rank >= ContextRiskLevel.WARNING.rank
    assert result.final_tokens <= 4000 * 0.6
    assert result.tokens_saved == result.original_tokens - result.final_tokens > 0
    assert isinstance(result.processed_messages, list)
    assert result.processed_messages[:2] == msgs[:2]  # system prompt and task verbatim
    assert result.processed_messages[-1] is msgs[-1]
    summary = result.metadata["summary"]["summaries"][0]
    inserted = result.processed_messages[summary["index"]]
    assert inserted["role"] == summary["role"] == "user"
    assert inserted["content"].startswith("<conversation_summary>")


async def test_validate_and_truncate_returns_messages_and_metadata() -> None:
    body = anthropic_body(25)
    messages, meta = await api.validate_and_truncate_context_async(
        body, max_tokens=2500, model="anthropic/claude-sonnet-4-5", format="anthropic"
    )
    assert isinstance(messages, dict) and messages["system"] == body["system"]  # a body in, a body out
    assert meta["final_tokens"] <= 2500
    assert meta["strategy_used"] in {s.value for s in ContextManagementStrategy}


async def test_safe_input_is_returned_as_is() -> None:
    msgs = openai_chat(2)
    result = await api.apply_intelligent_context_management(msgs, model="gpt-4o")
    assert result.processed_messages is msgs
    assert result.strategy_used is ContextManagementStrategy.MONITOR_ONLY


async def test_observe_mode_changes_nothing_but_reports_the_plan() -> None:
    api.set_default_engine(ContextEngine(settings(context_management_mode="observe")))
    msgs = openai_chat(30)
    result = await api.apply_intelligent_context_management(msgs, max_tokens=4000, model="gpt-4o")
    assert result.processed_messages is msgs
    assert result.metadata["observe_only"] is True
    assert result.metadata["planned_strategy"] != "MONITOR_ONLY"
    assert result.metadata["actions"]


async def test_clear_context_caches_makes_the_next_call_recompute() -> None:
    from engine_worker import CountingSummarizer

    summarizer = CountingSummarizer()
    api.set_default_engine(
        ContextEngine(
            settings(context_speculative_condensation=False, condensation_quality_threshold=0.0), summarizer=summarizer
        )
    )
    msgs = openai_chat(60, words=5)
    first = await api.apply_intelligent_context_management(msgs, max_tokens=4000, model="gpt-4o")
    calls = summarizer.calls
    assert calls >= 1 and first.final_tokens < first.original_tokens
    again = await api.apply_intelligent_context_management(msgs, max_tokens=4000, model="gpt-4o")
    assert summarizer.calls == calls  # served from what it kept
    assert [a.split(":")[0] for a in again.metadata["actions"]] == ["reuse"] * len(again.metadata["actions"])
    api.clear_context_caches()
    fresh = await api.apply_intelligent_context_management(msgs, max_tokens=4000, model="gpt-4o")
    assert summarizer.calls == 2 * calls  # recomputed: nothing of the first result was kept
    assert fresh.processed_messages == first.processed_messages


# -- the call forms of every public function ---------------------------------------------------
# The positions differ between functions and are part of the public API: these tests pin every
# signature and where each argument lands. ``model`` and ``format`` are keyword-only everywhere.

_P = inspect.Parameter
_REQUIRED = _P.empty
_ANALYSIS_POSITIONS = [("messages", _REQUIRED), ("is_vision", False), ("image_descriptions", None)]
_MANAGEMENT_POSITIONS = [*_ANALYSIS_POSITIONS[:2], ("max_tokens", None), ("image_descriptions", None)]
_SIGNATURES: dict[str, tuple[list[tuple[str, Any]], dict[str, Any]]] = {
    "analyze_context_state": (
        [*_ANALYSIS_POSITIONS, ("max_tokens", None)],
        {"model": None, "format": "openai"},
    ),
    "get_context_info": (_ANALYSIS_POSITIONS, {"model": None, "format": "openai", "max_tokens": None}),
    "should_condense_context": (_ANALYSIS_POSITIONS, {"model": None, "format": "openai", "max_tokens": None}),
    "get_context_management_strategy": (_ANALYSIS_POSITIONS, {"model": None, "format": "openai", "max_tokens": None}),
    "apply_intelligent_context_management": (_MANAGEMENT_POSITIONS, {"model": None, "format": "openai"}),
    "validate_and_truncate_context_async": (_MANAGEMENT_POSITIONS, {"model": None, "format": "openai"}),
    "get_context_performance_stats": ([], {}),
    "clear_context_caches": ([], {}),
    "default_engine": ([], {}),
    "set_default_engine": ([("engine", _REQUIRED)], {}),
}


def test_every_public_function_is_pinned() -> None:
    public = {
        name
        for name, value in vars(api).items()
        if inspect.isfunction(value) and value.__module__ == api.__name__ and not name.startswith("_")
    }
    assert public == set(_SIGNATURES)


@pytest.mark.parametrize("name", sorted(_SIGNATURES))
def test_signature_is_unchanged(name: str) -> None:
    params = inspect.signature(getattr(api, name)).parameters.values()
    positional = [(p.name, p.default) for p in params if p.kind is _P.POSITIONAL_OR_KEYWORD]
    keyword_only = {p.name: p.default for p in params if p.kind is _P.KEYWORD_ONLY}
    others = [p.name for p in params if p.kind not in {_P.POSITIONAL_OR_KEYWORD, _P.KEYWORD_ONLY}]
    assert (positional, keyword_only, others) == (*_SIGNATURES[name], [])


@dataclass(frozen=True)
class _Seen:
    """What one public call handed to the engine."""

    call: str
    fmt: Format
    model: str
    limit: int | None
    is_vision: bool
    image_descriptions: Mapping[int, str] | None


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[_Seen]:
    """Record every engine call of the API (and still make it), on an engine with a default model."""
    engine = ContextEngine(settings(context_default_model="gpt-4o-mini"))
    api.set_default_engine(engine)
    calls: list[_Seen] = []
    analyze, manage = engine.analyze, engine.manage

    def record(call: str, fmt: Format, model: str, kw: dict[str, Any]) -> None:
        calls.append(_Seen(call, fmt, model, kw["limit"], kw["is_vision"], kw["image_descriptions"]))

    def spy_analyze(body: Mapping[str, Any], fmt: Format, model: str, **kw: Any) -> Any:
        record("analyze", fmt, model, kw)
        return analyze(body, fmt, model, **kw)

    async def spy_manage(body: Mapping[str, Any], fmt: Format, model: str, **kw: Any) -> Any:
        record("manage", fmt, model, kw)
        return await manage(body, fmt, model, **kw)

    monkeypatch.setattr(engine, "analyze", spy_analyze)
    monkeypatch.setattr(engine, "manage", spy_manage)
    return calls


_DESCRIPTIONS = {0: "a diagram of the billing service"}
_BY_KEYWORD = {"is_vision": True, "image_descriptions": _DESCRIPTIONS, "max_tokens": 50_000}
_ANALYSIS_HELPERS = ["get_context_info", "should_condense_context", "get_context_management_strategy"]
_MANAGEMENT = ["apply_intelligent_context_management", "validate_and_truncate_context_async"]
_EXPECTED = _Seen("", Format.ANTHROPIC, "claude-sonnet-4-5", 50_000, True, _DESCRIPTIONS)


async def _call(name: str, *args: Any, **kwargs: Any) -> Any:
    out = getattr(api, name)(*args, **kwargs)
    return await out if inspect.isawaitable(out) else out


def _positional(name: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Every parameter that may be positional given by position, the rest by keyword."""
    if name == "analyze_context_state":
        return (True, _DESCRIPTIONS, 50_000), {}
    if name in _MANAGEMENT:
        return (True, 50_000, _DESCRIPTIONS), {}
    return (True, _DESCRIPTIONS), {"max_tokens": 50_000}


@pytest.mark.parametrize("form", ["positional", "keyword"])
@pytest.mark.parametrize("name", ["analyze_context_state", *_ANALYSIS_HELPERS, *_MANAGEMENT])
async def test_each_parameter_reaches_the_engine_in_both_forms(name: str, form: str, seen: list[_Seen]) -> None:
    body = anthropic_body(2)
    args, kwargs = _positional(name) if form == "positional" else ((), _BY_KEYWORD)
    await _call(name, body, *args, **kwargs, model="claude-sonnet-4-5", format="anthropic")
    call = "manage" if name in _MANAGEMENT else "analyze"
    assert seen == [replace(_EXPECTED, call=call)]


@pytest.mark.parametrize("name", ["analyze_context_state", *_ANALYSIS_HELPERS, *_MANAGEMENT])
async def test_default_arguments_reach_the_engine(name: str, seen: list[_Seen]) -> None:
    await _call(name, openai_chat(2))
    call = "manage" if name in _MANAGEMENT else "analyze"
    assert seen == [_Seen(call, Format.OPENAI, "gpt-4o-mini", None, False, None)]


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("analyze_context_state", (True, None, 1000, "gpt-4o")),  # model is keyword-only
        *[(n, (True, None, 1000)) for n in _ANALYSIS_HELPERS],  # max_tokens is keyword-only
        *[(n, (True, 1000, None, "gpt-4o")) for n in _MANAGEMENT],  # model is keyword-only
    ],
)
async def test_keyword_only_parameters_refuse_a_position(name: str, extra: tuple[Any, ...]) -> None:
    with pytest.raises(TypeError):
        await _call(name, openai_chat(2), *extra)


async def test_results_of_the_helpers_are_the_analysis() -> None:
    msgs = openai_chat(10)
    r = api.analyze_context_state(msgs, False, None, 3000, model="gpt-4o")
    info = api.get_context_info(msgs, False, None, model="gpt-4o", max_tokens=3000)
    assert (info["estimated_tokens"], info["hard_limit"], info["risk_level"]) == (
        r.current_tokens,
        r.limit_tokens,
        r.risk_level.value,
    )
    assert api.should_condense_context(msgs, False, None, model="gpt-4o", max_tokens=3000) is r.should_condense
    assert api.get_context_management_strategy(msgs, False, None, model="gpt-4o", max_tokens=3000) is (
        r.recommended_strategy
    )
    managed = await api.apply_intelligent_context_management(msgs, False, 3000, None, model="gpt-4o")
    processed, meta = await api.validate_and_truncate_context_async(msgs, False, 3000, None, model="gpt-4o")
    assert processed == managed.processed_messages
    assert (meta["original_tokens"], meta["final_tokens"]) == (managed.original_tokens, managed.final_tokens)
