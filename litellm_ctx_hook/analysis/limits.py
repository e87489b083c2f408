"""How many tokens a request may use: the model's input window minus the reserved output.

The window of a proxy alias is the *smallest* ``max_input_tokens`` over the alias's deployments
(a request may be routed to any of them); then per-deployment ``model_info`` overrides; then
LiteLLM's model table; then ``REAL_TEXT_MODEL_TOKENS`` / ``REAL_VISION_MODEL_TOKENS``.
LiteLLM is imported lazily, so the pure modules stay light.
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
    """The part of LiteLLM's ``Router`` we read (``get_model_list``)."""

    def get_model_list(self, model_name: str | None = None) -> Any: ...


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


def _litellm_window(model: str) -> int | None:
    try:
        import litellm

        info = litellm.get_model_info(model)
    except Exception:
        return None
    value = info.get("max_input_tokens") if isinstance(info, Mapping) else None
    return value if isinstance(value, int) and value > 0 else None


def _positive_int(value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigurationError(f"{what} must be a positive integer, got {value!r}")
    return value


def resolve_target(
    alias: str,
    settings: Settings,
    router: RouterLike | None = None,
    *,
    is_vision: bool = False,
    warned: set[str] | None = None,
) -> ModelTarget:
    """Resolve a client model name to the deployment model, window and per-model overrides.

    ``warned`` collects the models already logged as unknown, so each is logged once per owner.
    """
    fallback = settings.real_vision_model_tokens if is_vision else settings.real_text_model_tokens
    if not alias:  # no model named: the specification's generic windows
        return ModelTarget("", "", fallback, "settings")
    deployments: list[Mapping[str, Any]] = []
    if router is not None:
        try:
            listed = router.get_model_list(model_name=alias)
        except Exception:
            listed = None
        if isinstance(listed, list):
            deployments = [d for d in listed if isinstance(d, Mapping)]
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
            window = _litellm_window(dep_model)
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


def requested_output(body: Mapping[str, Any], fmt: Format) -> int | None:
    """The output the client reserved (``max_tokens`` and friends), if any."""
    keys = {
        Format.OPENAI: ("max_completion_tokens", "max_tokens"),
        Format.ANTHROPIC: ("max_tokens",),
        Format.RESPONSES: ("max_output_tokens",),
    }[fmt]
    for key in keys:
        value = body.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def budget_for(window: int, reserved_output: int | None) -> Budget:
    """The request's budget; without a reservation keep min(4096, window/10) for the answer."""
    reserve = reserved_output if reserved_output is not None else min(DEFAULT_OUTPUT_RESERVE, window // 10)
    reserve = min(reserve, window - 1)
    return Budget(window, reserve, window - reserve)


def deployment_target(alias: str, model: str, model_info: Any, settings: Settings) -> ModelTarget:
    """The target of the one deployment LiteLLM chose (its ``litellm_params.model`` and
    ``model_info``), with the same precedence as :func:`resolve_target`: the ``ctx_hook.window``
    override, ``max_input_tokens``, LiteLLM's model table, then the generic window."""
    info: Mapping[str, Any] = model_info if isinstance(model_info, Mapping) else {}
    overrides = _deployment_overrides(info)
    where = f"model_info of {alias!r}"
    disabled = bool(overrides.get("disable", False))
    summarizer = overrides["summarizer"] if isinstance(overrides.get("summarizer"), str) else None
    window = _positive_int(overrides.get("window"), f"{where}.{OVERRIDES_KEY}.window") or _positive_int(
        info.get("max_input_tokens"), f"{where}.max_input_tokens"
    )
    source = "model_info"
    if window is None:
        window, source = _litellm_window(model), "litellm"
    if window is None:
        window, source = settings.real_text_model_tokens, "fallback"
    return ModelTarget(alias, model, window, source, disabled, summarizer)
