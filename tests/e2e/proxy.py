"""The proxy launcher lives in the package (the demo uses it too); the tests import it from here."""

from litellm_ctx_hook.testing.proxy import (
    DEFAULT_MODELS,
    REPO_ROOT,
    ProxyProcess,
    ProxyStartError,
    free_port,
    model_entry,
    proxy_env,
    start_proxy,
    upstream_config,
)

__all__ = [
    "DEFAULT_MODELS",
    "REPO_ROOT",
    "ProxyProcess",
    "ProxyStartError",
    "free_port",
    "model_entry",
    "proxy_env",
    "start_proxy",
    "upstream_config",
]
