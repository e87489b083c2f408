"""How many tokens a request may use: the model's input window minus the reserved output.

The window of a proxy alias is the *smallest* ``max_input_tokens`` over the alias's deployments
(a request may be routed to any of them); then per-deployment ``model_info`` overrides; then
LiteLLM's model table; then ``REAL_TEXT_MODEL_TOKENS`` / ``REAL_VISION_MODEL_TOKENS``.
LiteLLM is imported lazily, so the pure modules stay light.

The router is read through its entry points where LiteLLM has them (1.110 on:
``registry().deployments(...)`` for the deployments, ``registry().deployment_model_info(...)`` for a
deployment's window in LiteLLM's table merged with what was discovered from the provider), and
through ``get_model_list`` with ``litellm.get_model_info`` where it does not (the old members warn
with a ``DeprecationWarning`` since 1.110). Such a warning turned into an error (``-W error``) is
never swallowed here, so a test run with deprecations as errors fails on the call that warned.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ..conversation import Format
from ..errors import ConfigurationError
from ..settings import Settings

log = logging.getLogger(__name__)

#: ``model_info`` key of a deployment holding this plugin's per-model overrides, e.g.
#: ``model_info: {max_input_tokens: 32000, ctx_hook: {summarizer: summarizer, disable: false}}``
OVERRIDES_KEY = "ctx_hook"
#: Output reserved when the request does not say: this much, at most a tenth of the window.
DEFAULT_OUTPUT_RESERVE = 4096


class RouterLike(Protocol):
    """The part of LiteLLM's ``Router`` before 1.110 we read (``get_model_list``)."""

    def get_model_list(self, model_name: str | None = None) -> Any: ...


class RegistryLike(Protocol):
    """The part of LiteLLM's router registry (``Router.registry()``, 1.110 on) we read."""

    def deployments(self, model_name: str | None = None, *, team_id: str | None = None) -> Any: ...

    def deployment_model_info(self, id: str, model_name: str) -> Any: ...


class RegistryRouterLike(Protocol):
    """A router with the registry entry point (LiteLLM 1.110 on)."""

    def registry(self) -> RegistryLike: ...


#: What :func:`resolve_target` accepts as the router: either generation of LiteLLM's ``Router``.
AnyRouter = RouterLike | RegistryRouterLike


@dataclass(frozen=True, slots=True)
class ModelTarget:
    """The model a request will be served by, as far as counting and limits are concerned."""

    alias: str  # what the client asked for
    model: str  # deployment model string (picks the tokenizer)
    window: int  # input window in tokens
    source: str  # where the window came from: router | model_info | litellm | fallback | request
    disabled: bool = False
    summarizer: str | None = None  # per-model summariser alias


@dataclass(frozen=True, slots=True)
class Budget:
    window: int
    reserved_output: int
    limit: int  # window - reserved_output: what the request itself may use


def _deployment_overrides(info: Mapping[str, Any]) -> Mapping[str, Any]:
    value = info.get(OVERRIDES_KEY)
    return value if isinstance(value, Mapping) else {}


def _window_of(info: Any) -> int | None:
    value = info.get("max_input_tokens") if isinstance(info, Mapping) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _litellm_window(model: str) -> int | None:
    try:
        import litellm

        info = litellm.get_model_info(model)
    except Warning:
        raise  # a warning made an error (-W error): the caller must see it
    except Exception:
        return None
    return _window_of(info)


def _registry(router: object) -> RegistryLike | None:
    """The router's registry (LiteLLM 1.110 on), or ``None`` on a router without one."""
    entry = getattr(router, "registry", None)
    if not callable(entry):
        return None
    try:
        registry = entry()
    except Warning:
        raise
    except Exception:
        return None
    return registry if callable(getattr(registry, "deployments", None)) else None


def router_deployments(
    router: AnyRouter | None, model_name: str, *, team_id: str | None = None
) -> list[Mapping[str, Any]]:
    """The deployments ``model_name`` may be routed to (its group, aliases, routing groups and
    wildcards, plus the team's own deployments when ``team_id`` is given), each as its
    ``model_list`` dict; ``[]`` without a router or when the router cannot say.

    Read through ``registry().deployments`` where the router has it, else ``get_model_list``.
    """
    if router is None:
        return []
    registry = _registry(router)
    try:
        if registry is not None:
            listed = registry.deployments(model_name, team_id=team_id)
        elif (get_model_list := getattr(router, "get_model_list", None)) is not None:
            listed = (
                get_model_list(model_name=model_name, team_id=team_id)
                if team_id is not None
                else get_model_list(model_name=model_name)
            )
        else:
            return []
    except Warning:
        raise
    except Exception:
        return []
    if not isinstance(listed, list | tuple):
        return []
    return [d for d in listed if isinstance(d, Mapping)]


def _table_window(router: AnyRouter | None, deployment: Mapping[str, Any], model: str) -> int | None:
    """The window of ``model`` in LiteLLM's table, through the router's registry where it has one
    (which merges limits discovered from the provider for this deployment)."""
    registry = _registry(router) if router is not None else None
    info = deployment.get("model_info")
    dep_id = info.get("id") if isinstance(info, Mapping) else None
    if registry is not None and isinstance(dep_id, str) and callable(getattr(registry, "deployment_model_info", None)):
        try:
            window = _window_of(registry.deployment_model_info(dep_id, model))
        except Warning:
            raise
        except Exception:
            window = None
        if window is not None:
            return window
    return _litellm_window(model)


def _positive_int(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigurationError(f"{what} must be a positive integer, got {value!r}")
    return value


def resolve_target(
    alias: str,
    settings: Settings,
    router: AnyRouter | None = None,
    *,
    is_vision: bool = False,
    warned: set[str] | None = None,
    team_id: str | None = None,
) -> ModelTarget:
    """Resolve a client model name to the deployment model, window and per-model overrides.

    ``warned`` collects the models already logged as unknown, so each is logged once per owner;
    ``team_id`` adds the team's own deployments of ``alias``.
    """
    if not alias:  # no model named: the generic windows (REAL_*_MODEL_TOKENS)
        fallback = settings.real_vision_model_tokens if is_vision else settings.real_text_model_tokens
        return ModelTarget("", "", fallback, "settings")
    deployments = router_deployments(router, alias, team_id=team_id)
    return _target_over(alias, deployments, settings, router, is_vision, warned)


def deployment_target(
    alias: str,
    deployment: Mapping[str, Any],
    settings: Settings,
    router: AnyRouter | None = None,
    *,
    is_vision: bool = False,
    warned: set[str] | None = None,
) -> ModelTarget:
    """Like :func:`resolve_target`, for the one deployment a request was routed to (its
    ``model_list`` dict: ``litellm_params`` and ``model_info``): that deployment's own window, not
    the smallest of its alias. ``router`` (optional) reads the window in LiteLLM's table through
    the registry where it has one."""
    return _target_over(alias, [deployment], settings, router, is_vision, warned)


def _target_over(
    alias: str,
    deployments: list[Mapping[str, Any]],
    settings: Settings,
    router: AnyRouter | None,
    is_vision: bool,
    warned: set[str] | None,
) -> ModelTarget:
    """The target of ``alias`` served by any of ``deployments`` (the smallest window of them)."""
    fallback = settings.real_vision_model_tokens if is_vision else settings.real_text_model_tokens
    windows: list[int] = []
    model = alias
    disabled = False
    summarizer: str | None = None
    source = "fallback"
    for dep in deployments:
        params = dep.get("litellm_params")
        info = dep.get("model_info")
        params = params if isinstance(params, Mapping) else {}
        info = info if isinstance(info, Mapping) else {}
        dep_model = params.get("model")
        if isinstance(dep_model, str) and model == alias:
            model = dep_model
        overrides = _deployment_overrides(info)
        disabled = disabled or bool(overrides.get("disable", False))
        if summarizer is None and isinstance(overrides.get("summarizer"), str):
            summarizer = overrides["summarizer"]
        where = f"model_info of {alias!r}"
        window = _positive_int(overrides.get("window"), f"{where}.{OVERRIDES_KEY}.window") or _positive_int(
            info.get("max_input_tokens"), f"{where}.max_input_tokens"
        )
        if window is not None:
            source = "model_info"
        elif isinstance(dep_model, str):
            window = _table_window(router, dep, dep_model)
            if window is not None:
                source = "router"
        if window is not None:
            windows.append(window)
    if windows:
        return ModelTarget(alias, model, min(windows), source, disabled, summarizer)
    window = _litellm_window(model)
    if window is not None:
        return ModelTarget(alias, model, window, "litellm", disabled, summarizer)
    if warned is None or alias not in warned:
        if warned is not None:
            warned.add(alias)
        log.warning("context window of model %r unknown: using %d tokens", alias, fallback)
    return ModelTarget(alias, model, fallback, "fallback", disabled, summarizer)


#: The body keys that reserve output, per route (the first one present counts).
OUTPUT_KEYS = {
    Format.OPENAI: ("max_completion_tokens", "max_tokens"),
    Format.ANTHROPIC: ("max_tokens",),
    Format.RESPONSES: ("max_output_tokens",),
}


def requested_output(body: Mapping[str, Any], fmt: Format) -> int | None:
    """The output the client reserved (``max_tokens`` and friends), if any."""
    for key in OUTPUT_KEYS[fmt]:
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def budget_for(window: int, reserved_output: int | None) -> Budget:
    """The request's budget; without a reservation keep min(4096, window/10) for the answer."""
    reserve = reserved_output if reserved_output is not None else min(DEFAULT_OUTPUT_RESERVE, window // 10)
    reserve = min(reserve, window - 1)
    return Budget(window, reserve, window - reserve)
