"""Context window resolution and output reservation."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from support import settings

from litellm_ctx_hook.analysis.limits import (
    budget_for,
    deployment_target,
    requested_output,
    resolve_target,
    router_deployments,
)
from litellm_ctx_hook.conversation import Format
from litellm_ctx_hook.errors import ConfigurationError


class Router:
    """A router before LiteLLM 1.110: ``get_model_list`` only."""

    def __init__(self, deployments: list[dict[str, Any]]) -> None:
        self.deployments = deployments

    def get_model_list(self, model_name: str | None = None) -> list[dict[str, Any]]:
        return [d for d in self.deployments if d["model_name"] == model_name]


class Registry:
    def __init__(self, deployments: list[dict[str, Any]], discovered: dict[str, int]) -> None:
        self._deployments = deployments
        self._discovered = discovered  # deployment id -> window LiteLLM knows for it
        self.calls: list[tuple[str | None, str | None]] = []

    def deployments(self, model_name: str | None = None, *, team_id: str | None = None) -> list[dict[str, Any]]:
        self.calls.append((model_name, team_id))
        return [
            d
            for d in self._deployments
            if d["model_name"] == model_name and d["model_info"].get("team_id") in (None, team_id)
        ]

    def deployment_model_info(self, id: str, model_name: str) -> dict[str, Any] | None:
        window = self._discovered.get(id)
        return None if window is None else {"key": model_name, "max_input_tokens": window}


class RegistryRouter(Router):
    """A router of LiteLLM 1.110 on: the old member still answers, but warns as LiteLLM's shim does."""

    def __init__(self, deployments: list[dict[str, Any]], discovered: dict[str, int] | None = None) -> None:
        super().__init__(deployments)
        self._registry = Registry(deployments, discovered or {})

    def registry(self) -> Registry:
        return self._registry

    def get_model_list(self, model_name: str | None = None) -> list[dict[str, Any]]:
        warnings.warn(
            "Router.get_model_list is deprecated; use Router.registry().deployments(model_name, team_id=...)",
            DeprecationWarning,
            stacklevel=2,
        )
        return super().get_model_list(model_name)


class DeprecatedRouter(Router):
    """A router whose ``get_model_list`` warns and that has no registry (what a filter must catch)."""

    def get_model_list(self, model_name: str | None = None) -> list[dict[str, Any]]:
        warnings.warn("Router.get_model_list is deprecated", DeprecationWarning, stacklevel=2)
        return super().get_model_list(model_name)


TWO_WINDOWS = [
    {"model_name": "chat", "litellm_params": {"model": "openai/big"}, "model_info": {"id": "big-1"}},
    {"model_name": "chat", "litellm_params": {"model": "openai/small"}, "model_info": {"id": "small-1"}},
    {"model_name": "other", "litellm_params": {"model": "openai/gpt-4o"}, "model_info": {"id": "o-1"}},
    {
        "model_name": "chat",
        "litellm_params": {"model": "openai/team-only"},
        "model_info": {"id": "team-1", "team_id": "t1", "max_input_tokens": 8000},
    },
]


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


def test_registry_router_reads_deployments_and_windows_through_the_registry() -> None:
    router = RegistryRouter(TWO_WINDOWS, discovered={"big-1": 200_000, "small-1": 128_000})
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)  # get_model_list would raise here
        t = resolve_target("chat", settings(), router)
        team = resolve_target("chat", settings(), router, team_id="t1")
    assert (t.window, t.model, t.source) == (128_000, "openai/big", "router")
    assert team.window == 8000  # the team's own deployment joins the alias
    assert router.registry().calls == [("chat", None), ("chat", "t1")]


def test_router_without_registry_reads_get_model_list() -> None:
    router = Router([*TWO_WINDOWS[:1], {"model_name": "chat", "litellm_params": {"model": "gpt-4o-mini"}}])
    assert [d["litellm_params"]["model"] for d in router_deployments(router, "chat")] == ["openai/big", "gpt-4o-mini"]
    # no registry: the window comes from LiteLLM's own table (openai/big is not in it)
    assert resolve_target("chat", settings(), router).window == 128_000
    assert router_deployments(None, "chat") == []
    assert router_deployments(object(), "chat") == []  # a router that can say neither


def test_a_deprecation_made_an_error_is_not_swallowed() -> None:
    router = DeprecatedRouter(TWO_WINDOWS)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        with pytest.raises(DeprecationWarning, match="get_model_list"):
            resolve_target("chat", settings(), router)
    with warnings.catch_warnings():  # as a plain warning the call still answers
        warnings.simplefilter("ignore", DeprecationWarning)
        assert len(router_deployments(router, "chat")) == 3  # the fake lists the team deployment too


def test_a_failing_registry_reads_as_no_deployments() -> None:
    class Broken:
        def registry(self) -> Any:
            raise RuntimeError("router core not ready")

    t = resolve_target("gpt-4o", settings(), Broken())  # type: ignore[arg-type]
    assert (t.window, t.source) == (128_000, "litellm")


def test_the_installed_litellm_router_is_read_without_deprecation_warnings() -> None:
    """Whichever LiteLLM is installed (``nox -s pinned`` or ``newest``): its ``Router`` answers,
    and no LiteLLM ``DeprecationWarning`` comes from our calls (1.110 on: ``registry()``)."""
    litellm = pytest.importorskip("litellm")
    router = litellm.Router(
        model_list=[
            {"model_name": "chat", "litellm_params": {"model": "openai/gpt-4o", "api_key": "sk-test"}},
            {
                "model_name": "chat",
                "litellm_params": {"model": "openai/gpt-4o-mini", "api_key": "sk-test"},
                "model_info": {"max_input_tokens": 16_000},
            },
        ]
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = resolve_target("chat", settings(), router)
        listed = router_deployments(router, "chat")
    assert (t.window, t.model) == (16_000, "openai/gpt-4o")
    assert len(listed) == 2
    deprecations = [w for w in caught if issubclass(w.category, DeprecationWarning)]
    assert deprecations == [], [str(w.message) for w in deprecations]


def test_one_deployment_has_its_own_window() -> None:
    router = RegistryRouter(TWO_WINDOWS, discovered={"big-1": 200_000, "small-1": 128_000})
    big, small = TWO_WINDOWS[0], TWO_WINDOWS[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        assert deployment_target("chat", big, settings(), router).window == 200_000
        assert deployment_target("chat", small, settings(), router).window == 128_000
    assert resolve_target("chat", settings(), router).window == 128_000  # the alias: its smallest
    overridden = {"litellm_params": {"model": "openai/big"}, "model_info": {"ctx_hook": {"window": 50_000}}}
    t = deployment_target("chat", overridden, settings())
    assert (t.window, t.model, t.source) == (50_000, "openai/big", "model_info")
    unknown = deployment_target("chat", {"litellm_params": {"model": "my-local"}}, settings(), warned=set())
    assert (unknown.window, unknown.source) == (200_000, "fallback")


def test_the_target_of_one_chosen_deployment() -> None:
    from litellm_ctx_hook.analysis.limits import deployment_target as target_of

    def deployment_target(alias: str, model: str, info: Any, s: Any) -> Any:
        return target_of(alias, {"litellm_params": {"model": model}, "model_info": info or {}}, s)

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
    assert deployment_target("chat", "openai/gpt-4o", None, s).source == "router"  # LiteLLM's model table: 128k
    assert deployment_target("chat", "openai/gpt-4o", None, s).window == 128_000
    unknown = deployment_target("x", "ctx-test-unknown-model", {}, s)
    assert (unknown.window, unknown.source) == (12_345, "fallback")
    with pytest.raises(ConfigurationError):
        deployment_target("chat", "openai/gpt-4o", {"max_input_tokens": -1}, s)
