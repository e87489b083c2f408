"""End-to-end fixtures: a fake upstream for the proxy to call.

Every test under ``tests/e2e`` gets the ``e2e`` marker (``pytest -m "not e2e"`` skips them).
Config builders (``upstream_config``, ``model_entry``) live in ``e2e/proxy.py`` beside
``start_proxy`` and are re-exported here. A proxy start is slow (8-15 s): start one per
module with a module-scoped fixture that uses ``module_upstream``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e.proxy import DEFAULT_MODELS, model_entry, upstream_config

from litellm_ctx_hook.testing.fake_upstream import FakeUpstream

__all__ = ["DEFAULT_MODELS", "model_entry", "upstream_config"]

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
def fake_upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as upstream:
        yield upstream


@pytest.fixture(scope="module")
def module_upstream() -> Iterator[FakeUpstream]:
    """One fake upstream for a module's shared proxy (its URL goes into the proxy config)."""
    with FakeUpstream() as upstream:
        yield upstream
