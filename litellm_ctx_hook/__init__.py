"""litellm-ctx-hook: keep every LiteLLM request inside its model's context window.

Register the proxy hook in LiteLLM's ``config.yaml``::

    litellm_settings:
      callbacks: ["litellm_ctx_hook.proxy_handler_instance"]

The seed Python API (``analyze_context_state``, ``apply_intelligent_context_management`` …) is
importable from here too. Attributes load lazily so the pure core stays light to import.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "proxy_handler_instance": "litellm_ctx_hook.proxy.hook",
    "ContextHook": "litellm_ctx_hook.proxy.hook",
    "ContextEngine": "litellm_ctx_hook.engine.engine",
    "ContextRiskLevel": "litellm_ctx_hook.analysis.risk",
    "ContextManagementStrategy": "litellm_ctx_hook.analysis.risk",
    "ContextAnalysisResult": "litellm_ctx_hook.analysis.risk",
    "ContextManagementResult": "litellm_ctx_hook.api",
    "analyze_context_state": "litellm_ctx_hook.api",
    "apply_intelligent_context_management": "litellm_ctx_hook.api",
    "validate_and_truncate_context_async": "litellm_ctx_hook.api",
    "get_context_info": "litellm_ctx_hook.api",
    "should_condense_context": "litellm_ctx_hook.api",
    "get_context_management_strategy": "litellm_ctx_hook.api",
    "get_context_performance_stats": "litellm_ctx_hook.api",
    "clear_context_caches": "litellm_ctx_hook.api",
    "ContextHookError": "litellm_ctx_hook.errors",
    "ContextWindowExceededError": "litellm_ctx_hook.errors",
    "Settings": "litellm_ctx_hook.settings",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'litellm_ctx_hook' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
