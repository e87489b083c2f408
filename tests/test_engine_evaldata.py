"""Every real conversation in ../shared/evaldata, managed at 8k, 32k and 128k windows, with the
extractive condenser and with a summariser that fails: the invariants hold."""

from __future__ import annotations

import asyncio

import pytest
import test_engine_properties as props
from support import needs_evaldata, settings
from test_engine_properties import check_invariants

from bench import evaldata
from litellm_ctx_hook.condensing.summarizer import SummarizerError, SummaryRequest
from litellm_ctx_hook.conversation import Format
from litellm_ctx_hook.engine.engine import ContextEngine

pytestmark = [needs_evaldata, pytest.mark.slow]


class FailingSummarizer:
    model = "broken-summarizer"

    def __init__(self) -> None:
        self.calls = 0

    async def summarize(self, req: SummaryRequest, timeout: float) -> str:
        self.calls += 1
        await asyncio.sleep(0)
        raise SummarizerError("upstream returned 500")


def _samples() -> list[evaldata.Sample]:
    if not evaldata.available():
        return []
    return list(evaldata.all_samples())


@pytest.mark.parametrize("window", [8_000, 32_000, 128_000])
@pytest.mark.parametrize("mode", ["extractive", "failing-summarizer"])
def test_real_conversations(window: int, mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    failing = FailingSummarizer()
    engine = ContextEngine(settings(), summarizer=failing if mode == "failing-summarizer" else None)
    monkeypatch.setattr(props, "ENGINE", engine)
    checked = 0
    for sample in _samples():
        fmt = Format(sample.format)
        props.MODELS[fmt] = sample.model
        check_invariants(fmt, sample.body, window)
        checked += 1
    assert checked > 300
    if mode == "failing-summarizer" and window == 8_000:
        assert failing.calls > 0 and engine.stats.fallbacks == failing.calls
