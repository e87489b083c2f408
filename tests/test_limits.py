"""Context window resolution and output reservation."""

from __future__ import annotations

from typing import Any

import pytest
from support import settings

from litellm_ctx_hook.analysis.limits import budget_for, requested_output, resolve_target
from litellm_ctx_hook.conversation import Format
from litellm_ctx_hook.errors import ConfigurationError


class Router:
    def __init__(self, deployments: list[dict[str, Any]]) -> None:
        self.deployments = deployments

    def get_model_list(self, model_name: str | None = None) -> list[dict[str, Any]]:
        return [d for d in self.deployments if d["model_name"] == model_name]


def test_alias_window_is_the_smallest_deployment() -> None:
    router = Router(
        [
            {"model_name": "chat", "litellm_params": {"model": "openai/gpt-4o"}, "model_info": {}},
            {
                "model_name": "chat",
                "litellm_params": {"model": "openai/gpt-4o-mini"},
                "model_info": {"max_input_tokens": 16000},
            },
            {"model_name": "other", "litellm_params": {"model": "openai/gpt-4o"}, "model_info": {}},
        ]
    )
    t = resolve_target("chat", settings(), router)
    assert t.window == 16000 and t.model == "openai/gpt-4o"


def test_overrides_in_model_info() -> None:
    router = Router(
        [
            {
                "model_name": "small",
                "litellm_params": {"model": "openai/gpt-4o"},
                "model_info": {"ctx_hook": {"window": 8000, "summarizer": "cheap", "disable": False}},
            },
        ]
    )
    t = resolve_target("small", settings(), router)
    assert (t.window, t.summarizer, t.disabled, t.source) == (8000, "cheap", False, "model_info")


def test_bad_override_is_a_clear_error() -> None:
    router = Router([{"model_name": "m", "litellm_params": {"model": "x"}, "model_info": {"max_input_tokens": -5}}])
    with pytest.raises(ConfigurationError, match="max_input_tokens"):
        resolve_target("m", settings(), router)


def test_litellm_table_then_fallback(caplog: pytest.LogCaptureFixture) -> None:
    assert resolve_target("gpt-4o", settings()).window == 128000
    warned: set[str] = set()
    t = resolve_target("my-local-llm", settings(), warned=warned)
    assert t.window == 200_000 and t.source == "fallback"
    assert resolve_target("my-local-llm", settings(), is_vision=True, warned=warned).window == 65_536
    assert sum("my-local-llm" in r.message for r in caplog.records) == 1  # logged once per model


def test_output_reservation() -> None:
    assert requested_output({"max_tokens": 100, "max_completion_tokens": 200}, Format.OPENAI) == 200
    assert requested_output({"max_tokens": 100}, Format.ANTHROPIC) == 100
    assert requested_output({"max_output_tokens": 300}, Format.RESPONSES) == 300
    assert requested_output({}, Format.OPENAI) is None
    assert budget_for(128000, 1000).limit == 127000
    assert budget_for(128000, None).limit == 128000 - 4096
    assert budget_for(8000, None).limit == 8000 - 800


def test_the_target_of_one_chosen_deployment() -> None:
    from litellm_ctx_hook.analysis.limits import deployment_target

    s = settings(real_text_model_tokens=12_345)
    info = {"max_input_tokens": 16_000, "ctx_hook": {"summarizer": "cheap"}}
    target = deployment_target("chat", "openai/gpt-4o-mini", info, s)
    assert (target.alias, target.model, target.window, target.source) == (
        "chat",
        "openai/gpt-4o-mini",
        16_000,
        "model_info",
    )
    assert target.summarizer == "cheap" and not target.disabled
    assert (
        deployment_target("chat", "openai/gpt-4o", {"ctx_hook": {"window": 9_000, "disable": True}}, s).window == 9_000
    )
    assert deployment_target("chat", "openai/gpt-4o", {"ctx_hook": {"disable": True}}, s).disabled
    assert deployment_target("chat", "openai/gpt-4o", None, s).source == "litellm"  # LiteLLM's table: 128k
    assert deployment_target("chat", "openai/gpt-4o", None, s).window == 128_000
    unknown = deployment_target("x", "ctx-test-unknown-model", {}, s)
    assert (unknown.window, unknown.source) == (12_345, "fallback")
    with pytest.raises(ConfigurationError):
        deployment_target("chat", "openai/gpt-4o", {"max_input_tokens": -1}, s)
