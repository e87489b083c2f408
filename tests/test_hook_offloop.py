"""Where the hook runs its work: long requests and all condensation on the worker thread, short
requests on the proxy's loop; every step on the loop timed."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY
from support import settings

from litellm_ctx_hook.proxy.hook import ContextHook
from litellm_ctx_hook.runtime.offloop import WORKER_NAME
from litellm_ctx_hook.testing.session import generate_session


@pytest.fixture
def hook() -> Iterator[ContextHook]:
    h = ContextHook(settings(real_text_model_tokens=12_000, context_speculative_condensation=False))
    yield h
    h.offloop.close()


def spy(hook: ContextHook) -> list[str]:
    """Names of the threads ``engine.manage`` and ``engine._act`` ran on, in call order."""
    seen: list[str] = []
    for name in ("manage", "_act"):
        real = getattr(hook.engine, name)

        async def wrapped(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            seen.append(f"{_name}@{threading.current_thread().name}")
            return await _real(*args, **kwargs)

        setattr(hook.engine, name, wrapped)
    return seen


def agent(turns: int) -> dict[str, Any]:
    return {"model": "agent-model-unknown", "messages": generate_session(turns=turns, seed=turns)["messages"]}


async def test_a_long_over_limit_request_is_managed_wholly_on_the_worker(hook: ContextHook) -> None:
    seen = spy(hook)
    body = agent(30)  # ~28k tokens for a 12k window
    data = copy.deepcopy(body)
    observed = REGISTRY.get_sample_value("litellm_ctx_loop_section_seconds_count") or 0.0
    out = await hook.async_pre_call_hook(None, None, data, "acompletion")
    here = threading.current_thread().name
    # looked up in the conversations' memo on the loop, then analysed and managed on the worker
    assert seen == [f"manage@{here}", f"manage@{WORKER_NAME}", f"_act@{WORKER_NAME}"]
    report = out["metadata"]["ctx_hook"]
    assert report["tokens_before"] > 12_000 > report["tokens_after"]
    assert out["messages"] != body["messages"]
    snap = hook.sections.snapshot()
    assert snap["sections"] >= 2  # hand-over and take-back, timed; the management itself is not on the loop
    assert REGISTRY.get_sample_value("litellm_ctx_loop_section_seconds_count") == observed + snap["sections"]


async def test_a_short_request_stays_on_the_loop_and_its_condensation_goes_to_the_worker() -> None:
    hook = ContextHook(settings(real_text_model_tokens=1_500, context_speculative_condensation=False))
    try:
        seen = spy(hook)
        body = agent(3)  # a few thousand characters: parsed on the loop, over a 1.5k window
        out = await hook.async_pre_call_hook(None, None, copy.deepcopy(body), "acompletion")
        assert seen[0] == f"manage@{threading.current_thread().name}" and seen[1] == f"_act@{WORKER_NAME}"
        assert out["metadata"]["ctx_hook"]["tokens_after"] < out["metadata"]["ctx_hook"]["tokens_before"]
        small = {"model": "agent-model-unknown", "messages": [{"role": "user", "content": "hi"}]}
        seen.clear()
        await hook.async_pre_call_hook(None, None, small, "acompletion")
        assert seen == [f"manage@{threading.current_thread().name}"]  # SAFE: never leaves the loop
    finally:
        hook.offloop.close()
