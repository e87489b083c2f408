"""The hook class itself, driven as LiteLLM drives it (no proxy process)."""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest
from litellm.types.utils import CallTypes
from prometheus_client import REGISTRY
from support import settings

from litellm_ctx_hook.proxy.hook import ContextHook

MALFORMED: list[tuple[str, dict[str, Any], str, str]] = [
    ("acompletion", {"model": "gpt-4o", "messages": "not a list"}, "openai", "not_list"),
    ("acompletion", {"model": "gpt-4o", "messages": [{"role": "wizard", "content": "x"}]}, "openai", "unknown_role"),
    ("acompletion", {"model": "gpt-4o", "messages": [{"role": "user", "content": [None]}]}, "openai", "not_object"),
    ("aresponses", {"model": "gpt-4o", "input": "hi", "instructions": 5}, "responses", "bad_field"),
    (
        "anthropic_messages",
        {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}], "system": 3},
        "anthropic",
        "bad_field",
    ),
]


def _invalid(route: str, reason: str) -> float:
    value = REGISTRY.get_sample_value("litellm_ctx_invalid_requests_total", {"route": route, "reason": reason})
    return value or 0.0


@pytest.mark.parametrize(("call_type", "body", "route", "reason"), MALFORMED)
async def test_a_malformed_request_passes_unchanged_with_one_log_line(
    call_type: str, body: dict[str, Any], route: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    hook = ContextHook(settings())
    before = _invalid(route, reason)
    data = copy.deepcopy(body)
    with caplog.at_level(logging.INFO, logger="litellm_ctx_hook"):
        sent = await _provider_call(hook, data, call_type)
    meta = {"metadata", "litellm_metadata"}
    assert {k: v for k, v in sent.items() if k not in meta} == body  # passed through, not a byte changed
    records = [r for r in caplog.records if r.name.startswith("litellm_ctx_hook")]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING and records[0].exc_info is None  # no stack trace
    assert "passed through unchanged" in records[0].getMessage()
    assert _invalid(route, reason) == before + 1


async def _provider_call(
    hook: ContextHook, data: dict[str, Any], call_type: str, model_info: dict[str, Any] | None = None
) -> dict[str, Any]:
    """As LiteLLM drives the hooks: the pre-call hook on the proxy's ``data``, then the deployment
    hook on a copy of it for the provider call; returns what the provider is sent."""
    out = await hook.async_pre_call_hook(None, None, data, call_type)
    assert out is data
    kwargs = {**data, "model_info": model_info or {}}
    changed = await hook.async_pre_call_deployment_hook(kwargs, CallTypes(call_type))
    return {k: v for k, v in (changed or kwargs).items() if k != "model_info"}


async def test_prefix_changes_are_reported_per_request_in_headers_metadata_and_metrics() -> None:
    from test_engine_steps import requests  # a growing agent session, managed by clearing in steps

    # A model LiteLLM does not know: its window is REAL_TEXT_MODEL_TOKENS.
    hook = ContextHook(settings(context_speculative_condensation=False, real_text_model_tokens=8_100))
    counter = hook.metrics.prefix_changes.labels(route="openai")
    before = counter._value.get()
    flags, headers = [], []
    for body in requests([25] * 40):
        out = {"model": "ctx-test-unknown-model", "max_tokens": 100, **copy.deepcopy(body)}
        await _provider_call(hook, out, "acompletion")
        report = out["metadata"]["ctx_hook"]
        flags.append(report["prefix_changed"])
        headers.append(
            (await hook.async_post_call_response_headers_hook(out, None, None) or {})["x-ctx-prefix-changed"]
        )
    assert headers == [str(f).lower() for f in flags] and set(headers) == {"true", "false"}
    assert 1 < sum(flags) < len(flags) // 3  # a few steps, not a change on every managed turn
    assert counter._value.get() - before == sum(flags)


async def test_an_oversized_max_tokens_is_lowered_in_the_body_sent_and_said_in_a_header() -> None:
    from test_engine_fit import claude_code_body  # ~23k of pinned head, ~5k a read

    # A model LiteLLM does not know: its window is REAL_TEXT_MODEL_TOKENS (72k, as in the report).
    hook = ContextHook(settings(context_speculative_condensation=False, real_text_model_tokens=72_000))
    body = claude_code_body(4)  # 43k of input: WARNING and above with the 40k that max_tokens 32000 leaves
    body["model"] = "ctx-test-unknown-model"
    body["thinking"] = {"type": "enabled", "budget_tokens": 31_999}
    data = copy.deepcopy(body)
    out = await hook.async_pre_call_hook(None, None, data, "anthropic_messages")
    granted = out["max_tokens"]
    assert hook.settings.output_tokens_floor <= granted < 32_000
    assert out["thinking"] == {"type": "enabled", "budget_tokens": granted - 1}  # still below max_tokens
    assert out["messages"] == body["messages"]  # the output gave way: no message changed
    headers = await hook.async_post_call_response_headers_hook(out, None, None) or {}
    assert headers["x-ctx-max-tokens"] == f"32000->{granted}"
    assert headers["x-ctx-actions"] == f"max_tokens:32000->{granted}"
    assert int(headers["x-ctx-tokens-before"]) + granted <= 72_000


# -- per-deployment management (async_pre_call_deployment_hook) ---------------------------------------
LARGE, SMALL = 24_000, 8_000


def _session() -> dict[str, Any]:
    from litellm_ctx_hook.testing.session import generate_session

    return {"model": "duo", "max_tokens": 512, "messages": generate_session(turns=13)["messages"]}  # ~11k tokens


def _attempt(data: dict[str, Any], model: str, window: int) -> dict[str, Any]:
    """The kwargs LiteLLM hands the deployment hook: the body, the deployment, a copy of the metadata."""
    return {
        **copy.deepcopy({k: v for k, v in data.items() if k != "metadata"}),
        "model": model,
        "model_info": {"id": f"id-{model}", "max_input_tokens": window},
        "metadata": {**data["metadata"], "model_group": data["model"]},
    }


async def _handed_over(hook: ContextHook, data: dict[str, Any], call_type: str = "acompletion") -> dict[str, Any]:
    out = await hook.async_pre_call_hook(None, None, data, call_type)
    assert isinstance(out, dict)
    return out


class _Router:
    """The proxy's router as far as the pre-call hook looks: there is one, it lists nothing."""

    def get_model_list(self, model_name: str | None = None) -> list[dict[str, Any]]:
        return []


@pytest.fixture
def proxy_router(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("litellm_ctx_hook.proxy.hook._router", _Router)


def _hook() -> ContextHook:
    return ContextHook(settings(context_speculative_condensation=False))


@pytest.mark.usefixtures("proxy_router")
async def test_the_deployment_hook_manages_to_the_chosen_deployments_window() -> None:
    hook = _hook()
    body = _session()
    data = await _handed_over(hook, copy.deepcopy(body))
    assert data["messages"] == body["messages"]  # the pre-call hook handed it over unchanged

    large = _attempt(data, "openai/gpt-4o-mini", LARGE)
    out = await hook.async_pre_call_deployment_hook(large, CallTypes.acompletion)
    assert (out or large)["messages"] == body["messages"]  # room in the large window
    assert data["metadata"]["ctx_hook"]["tokens_after"] == data["metadata"]["ctx_hook"]["tokens_before"]

    small = _attempt(data, "openai/gpt-4o", SMALL)  # a retry or fallback: a copy of the metadata
    out = await hook.async_pre_call_deployment_hook(small, CallTypes.acompletion)
    assert out is not None and out["messages"] != body["messages"]
    report = data["metadata"]["ctx_hook"]  # the proxy's own metadata shows the call that was sent
    assert report["tokens_after"] <= report["limit"] == SMALL - 512 < report["tokens_before"]
    assert report["deployment_model"] == "openai/gpt-4o"


async def test_calls_the_pre_call_hook_did_not_hand_over_are_left_alone() -> None:
    hook = _hook()
    body = _session()
    own_call = {**copy.deepcopy(body), "model_info": {"max_input_tokens": SMALL}, "metadata": {"tags": ["x"]}}
    assert await hook.async_pre_call_deployment_hook(own_call, CallTypes.acompletion) is None
    assert own_call["messages"] == body["messages"]  # e.g. the summariser's own call through the router


@pytest.mark.usefixtures("proxy_router")
async def test_a_bridge_call_of_another_call_type_is_not_managed_again() -> None:
    hook = _hook()
    session = _session()
    body = {"model": "duo", "max_output_tokens": 512, "input": [m for m in session["messages"] if m["role"] == "user"]}
    data = await _handed_over(hook, body, "aresponses")
    data["metadata"] = data.pop("litellm_metadata")
    bridged = _attempt(data, "claude-sonnet-4-5", SMALL)  # Responses → chat completions bridge
    bridged["messages"] = bridged.pop("input")
    assert await hook.async_pre_call_deployment_hook(bridged, CallTypes.acompletion) is None


@pytest.mark.usefixtures("proxy_router")
async def test_a_route_the_deployment_hook_is_not_called_on_is_managed_before_routing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from litellm_ctx_hook.proxy.hook import MANAGED_LIMIT_KEY

    hook = _hook()
    body = {**_session(), "model": "gpt-4o"}
    handed = await _handed_over(hook, copy.deepcopy(body))
    assert MANAGED_LIMIT_KEY not in handed["metadata"]
    await hook.async_post_call_response_headers_hook(handed, None, None)  # back without the deployment hook
    assert "did not call async_pre_call_deployment_hook on the openai route" in caplog.text

    data = await _handed_over(hook, copy.deepcopy(body))
    limit = data["metadata"][MANAGED_LIMIT_KEY]  # managed before routing, to gpt-4o's window: it fits
    assert limit == 128_000 - 512 and data["messages"] == body["messages"]
    same = _attempt(data, "openai/gpt-4o", 128_000)
    assert await hook.async_pre_call_deployment_hook(same, CallTypes.acompletion) is None
    smaller = _attempt(data, "openai/gpt-4o-mini", SMALL)  # a fallback to a smaller window: managed again
    out = await hook.async_pre_call_deployment_hook(smaller, CallTypes.acompletion)
    assert out is not None and out["messages"] != body["messages"]

    # the other routes are still handed over; a request the deployment hook saw changes nothing
    other = await _handed_over(
        hook, {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}, "anthropic_messages"
    )
    assert MANAGED_LIMIT_KEY not in other["litellm_metadata"]


@pytest.mark.usefixtures("proxy_router")
async def test_a_request_too_large_for_the_deployment_is_litellms_context_window_error() -> None:
    from litellm.exceptions import ContextWindowExceededError

    hook = _hook()
    data = await _handed_over(
        hook,
        {
            "model": "duo",
            "messages": [{"role": "system", "content": "rule " * 20_000}, {"role": "user", "content": "hi"}],
        },
    )
    with pytest.raises(ContextWindowExceededError, match="context_window_exceeded"):  # the router's fallbacks apply
        await hook.async_pre_call_deployment_hook(_attempt(data, "openai/gpt-4o", SMALL), CallTypes.acompletion)


@pytest.mark.parametrize("client_compacts", [True, False], ids=["client-compacts", "plain"])
@pytest.mark.usefixtures("proxy_router")
async def test_a_client_compaction_within_the_window_is_left_to_the_client(client_compacts: bool) -> None:
    from litellm_ctx_hook.engine.engine import ContextEngine
    from litellm_ctx_hook.testing.fake_summarizer import KeywordSummarizer

    config = settings(context_speculative_condensation=False, condensation_quality_threshold=0.0)
    summarizer = KeywordSummarizer()
    hook = ContextHook(config, engine=ContextEngine(config, summarizer=summarizer))
    chat = [{"role": "system", "content": "Be brief."}]
    for k in range(400):  # short turns: nothing to clear, only a summary would do
        chat += [
            {"role": "user", "content": f"Check flight HAT{k}."},
            {"role": "assistant", "content": f"HAT{k}: {k} seats."},
        ]
    body: dict[str, Any] = {"model": "duo", "max_tokens": 512, "messages": chat}
    if client_compacts:
        edit = {"type": "compact_20260112", "trigger": {"type": "input_tokens", "value": 6_000}}
        body["context_management"] = {"edits": [edit]}
    data = await _handed_over(hook, copy.deepcopy(body))
    call = _attempt(data, "openai/gpt-4o", SMALL)
    sent = await hook.async_pre_call_deployment_hook(call, CallTypes.acompletion) or call
    report = data["metadata"]["ctx_hook"]
    assert report["tokens_before"] > report["limit"]  # over the window
    if client_compacts:  # the client's compaction fires first: counted, not even planned
        assert sent["messages"] == body["messages"] and summarizer.calls == 0
        assert report["handling"] == "observe" and report["managed_by"] == ["client_compaction:compact_20260112"]
        assert report["strategy"] == "MONITOR_ONLY"
    else:
        assert sent["messages"] != body["messages"] and summarizer.calls > 0
        assert report["handling"] == "manage" and "managed_by" not in report


@pytest.mark.usefixtures("proxy_router")
async def test_the_hooks_own_metadata_keys_cannot_come_from_the_client() -> None:
    from litellm_ctx_hook.proxy.hook import MANAGED_LIMIT_KEY, ROUTE_KEY

    hook = _hook()
    body = _session()
    forged = {ROUTE_KEY: "openai", MANAGED_LIMIT_KEY: 1, "ctx_hook_disable": True}  # opted out, and forging
    data = await _handed_over(hook, {**copy.deepcopy(body), "metadata": dict(forged)})
    assert ROUTE_KEY not in data["metadata"] and MANAGED_LIMIT_KEY not in data["metadata"]
    call = _attempt(data, "openai/gpt-4o", SMALL)
    assert await hook.async_pre_call_deployment_hook(call, CallTypes.acompletion) is None  # opted out: untouched
    data = await _handed_over(hook, {**copy.deepcopy(body), "metadata": {MANAGED_LIMIT_KEY: 1}})
    sent = await hook.async_pre_call_deployment_hook(_attempt(data, "openai/gpt-4o", SMALL), CallTypes.acompletion)
    assert sent is not None and sent["messages"] != body["messages"]  # managed, the forged limit ignored


# -- sizes of what the plugin keeps in process ---------------------------------------------------------
SIZE_KEYS = {
    "token_counts",
    "analyses",
    "model_targets",
    "unknown_models",
    "turns",
    "summaries_local",
    "atom_digests",
    "background_summaries",
    "summariser_paces",
    "speculating",
    "summarisers",
    "cache_summaries",
    "cache_analyses",
    "cache_locks",
}


async def test_structure_sizes_name_every_structure_and_grow_with_a_managed_request() -> None:
    # A model LiteLLM does not know, with a window the ~11k-token session does not fit.
    hook = ContextHook(settings(context_speculative_condensation=False, real_text_model_tokens=8_000))
    fresh = hook.structure_sizes()
    assert set(fresh) == SIZE_KEYS
    assert all(isinstance(n, int) and n >= 0 for n in fresh.values())
    assert fresh["turns"] == fresh["model_targets"] == fresh["atom_digests"] == 0

    body = {**_session(), "model": "ctx-test-unknown-model"}
    out = await _provider_call(hook, copy.deepcopy(body), "acompletion")
    assert out["messages"] != body["messages"]  # managed: it did not fit as it was
    after = hook.structure_sizes()
    assert set(after) == SIZE_KEYS
    grown = {k for k in SIZE_KEYS if after[k] > fresh[k]}
    assert {"token_counts", "model_targets", "unknown_models", "turns", "atom_digests"} <= grown, after
    assert after["turns"] == len(hook.engine.turn_memo)
