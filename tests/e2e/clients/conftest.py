"""Real agent CLIs (installed from npm on first use) through a real proxy with the plugin.

One scripted upstream and one ``litellm --config`` proxy (extractive condenser, Redis) serve every
session; each test resets the upstream to its own workspace and window. A client that cannot be
installed here (no npm, no registry) skips with the reason, or fails when ``CI=true``. The rows of
every session are printed at the end of the run.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from e2e.clients.sessions import REPORTS, agent_unavailable, model_list
from e2e.proxy import ProxyProcess, start_proxy

from litellm_ctx_hook.testing.agent_report import HEADER
from litellm_ctx_hook.testing.agents import AGENTS, AgentUnavailable, install
from litellm_ctx_hook.testing.provider_upstream import ScriptedUpstream


@pytest.fixture(scope="session")
def scripted_upstream() -> Iterator[ScriptedUpstream]:
    with ScriptedUpstream() as upstream:
        yield upstream


@pytest.fixture(scope="session")
def agent_binaries() -> dict[str, Any]:
    """Each client's binary, or the reason it is unavailable (installed once, from the cache after)."""
    out: dict[str, Any] = {}
    for agent in AGENTS:
        try:
            out[agent.name] = install(agent)
        except AgentUnavailable as exc:
            out[agent.name] = exc
    return out


@pytest.fixture(scope="session")
def agents_proxy(
    agent_binaries: dict[str, Any], scripted_upstream: ScriptedUpstream, redis_url: str
) -> Iterator[ProxyProcess]:
    if all(isinstance(b, Exception) for b in agent_binaries.values()):  # no proxy for nothing to run
        agent_unavailable("; ".join(str(b) for b in agent_binaries.values()))
    config = {
        "model_list": model_list(scripted_upstream.url),
        "litellm_settings": {"callbacks": ["litellm_ctx_hook.proxy_handler_instance"]},
    }
    with start_proxy(config, {"REDIS_URL": redis_url}) as proxy:
        yield proxy


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if REPORTS:
        terminalreporter.write_sep("-", "agent sessions through the proxy")
        terminalreporter.write_line(HEADER)
        for report in REPORTS:
            terminalreporter.write_line(report.row())
