"""The worker thread, its bound and queue deadline, and the timing of steps on the loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from litellm_ctx_hook.condensing.summarizer import SummaryRequest
from litellm_ctx_hook.runtime import pacing
from litellm_ctx_hook.runtime.offloop import (
    FULL_GC_EVERY,
    WORKER_NAME,
    LoopBridge,
    OffLoop,
    SectionTimer,
    larger_than,
    on_worker,
    timed,
)
from litellm_ctx_hook.settings import CondensationStrategyName


@pytest.fixture
def offloop() -> Iterator[OffLoop]:
    worker = OffLoop(1)
    yield worker
    worker.close()


def far() -> float:
    return time.perf_counter() + 60


# -- timed ------------------------------------------------------------------------------------------
async def test_each_step_on_the_loop_is_timed_and_a_long_one_counted() -> None:
    timer = SectionTimer()

    async def steps() -> str:
        await asyncio.sleep(0)
        time.sleep(0.03)  # noqa: ASYNC251 - a synchronous section of 30 ms between two suspensions
        await asyncio.sleep(0.01)  # waiting is not a section
        return "done"

    assert await timed(steps(), timer) == "done"
    snap = timer.snapshot()
    assert snap["sections"] == 3  # start → sleep(0), → sleep(0.01), → return
    assert 30 <= snap["max_ms"] < 45
    assert snap["over_20ms"] == 1


async def test_timed_passes_exceptions_and_cancellation_through() -> None:
    timer = SectionTimer()

    async def fails() -> None:
        await asyncio.sleep(0)
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await timed(fails(), timer)

    cleaned = asyncio.Event()

    async def waits() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            cleaned.set()

    task = asyncio.create_task(timed(waits(), timer))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned.is_set()  # the inner coroutine saw the cancellation


def test_section_timer_feeds_its_observer_and_resets() -> None:
    seen: list[float] = []
    timer = SectionTimer(seen.append)
    timer.record(0.001)
    timer.record(0.025)
    assert seen == [0.001, 0.025]
    assert timer.snapshot()["over_20ms"] == 1
    timer.reset()
    assert timer.snapshot() == {"sections": 0, "max_ms": 0.0, "mean_ms": 0.0, "over_20ms": 0}


# -- the worker ---------------------------------------------------------------------------------------
async def test_work_runs_on_the_worker_while_the_callers_loop_stays_free(offloop: OffLoop) -> None:
    seen: dict[str, Any] = {}

    async def work() -> int:
        seen["thread"] = threading.current_thread().name
        seen["on_worker"] = on_worker()
        end = time.perf_counter() + 0.3
        while time.perf_counter() < end:  # CPU-bound Python, as condensing is
            sum(range(1000))
        return 42

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    tick = asyncio.create_task(ticker())
    assert await offloop.run(work, far()) == 42
    tick.cancel()
    assert seen == {"thread": WORKER_NAME, "on_worker": True}
    assert not on_worker()
    assert ticks >= 3  # the caller's loop kept running while the worker computed (blocked: 0 or 1)


async def test_errors_on_the_worker_reach_the_caller(offloop: OffLoop) -> None:
    async def work() -> None:
        raise KeyError("missing")

    with pytest.raises(KeyError):
        await offloop.run(work, far())


async def test_the_bound_queues_work_and_a_missed_deadline_runs_it_over_the_bound(offloop: OffLoop) -> None:
    release = threading.Event()
    order: list[str] = []

    async def hold() -> None:
        order.append("hold")
        await asyncio.get_running_loop().run_in_executor(None, release.wait)

    async def quick(name: str) -> str:
        order.append(name)
        return name

    first = asyncio.create_task(offloop.run(hold, far()))
    await asyncio.sleep(0.05)
    queued = asyncio.create_task(offloop.run(lambda: quick("queued"), far()))
    await asyncio.sleep(0.05)
    assert order == ["hold"] and offloop.snapshot()["waiting"] == 1  # the one slot is taken: it waits
    late = await offloop.run(lambda: quick("late"), time.perf_counter() + 0.05)
    assert late == "late" and offloop.overruns == 1  # past its deadline: managed anyway, never skipped
    release.set()
    assert await queued == "queued"
    await first
    assert order == ["hold", "late", "queued"]


async def test_optional_work_is_dropped_at_its_deadline(offloop: OffLoop) -> None:
    release = threading.Event()
    ran: list[str] = []

    async def hold() -> None:
        await asyncio.get_running_loop().run_in_executor(None, release.wait)

    async def optional() -> None:
        ran.append("optional")

    first = asyncio.create_task(offloop.run(hold, far()))
    await asyncio.sleep(0.05)
    offloop.spawn(optional, time.perf_counter() + 0.05)
    await asyncio.sleep(0.2)
    release.set()
    await first
    await offloop.drain()
    assert ran == [] and offloop.dropped == 1
    offloop.spawn(optional, far())
    await offloop.drain()
    assert ran == ["optional"]


async def test_optional_work_is_dropped_at_once_while_requests_wait(offloop: OffLoop) -> None:
    release = threading.Event()
    ran: list[str] = []

    async def hold() -> None:
        await asyncio.get_running_loop().run_in_executor(None, release.wait)

    async def work(name: str) -> None:
        ran.append(name)

    first = asyncio.create_task(offloop.run(hold, far()))
    await asyncio.sleep(0.05)
    queued = asyncio.create_task(offloop.run(lambda: work("queued"), far()))
    await asyncio.sleep(0.05)
    offloop.spawn(lambda: work("optional"), far())  # a request waits: it would only add to its wait
    assert offloop.dropped == 1 and offloop.pending == 0
    release.set()
    await asyncio.gather(first, queued)
    await offloop.drain()
    assert ran == ["queued"]


async def test_optional_work_gives_way_to_the_loop_to_the_end_a_late_request_does_not() -> None:
    worker = OffLoop(1, slice_s=1e-9)  # every pace() is past its slice
    try:
        worker.start()
        pacer = worker.pacer
        assert pacer is not None

        async def computes() -> None:
            for _ in range(3):
                pacing.pace()

        await worker.run(computes, time.perf_counter() - 1)  # a request past the half of its budget
        assert pacer.pauses == 0
        worker.spawn(computes, time.perf_counter() - 1)  # a slot is free: it starts, late as it is
        await worker.drain()
        assert pacer.pauses == 3
    finally:
        worker.close()


async def test_the_bridge_runs_summariser_calls_on_the_loop_it_was_made_on(offloop: OffLoop) -> None:
    class Recording:
        model = "summarizer"

        def __init__(self) -> None:
            self.loops: list[asyncio.AbstractEventLoop] = []

        async def summarize(self, req: SummaryRequest, timeout: float) -> str:
            self.loops.append(asyncio.get_running_loop())
            return "summary"

    inner = Recording()
    bridge = LoopBridge(inner, asyncio.get_running_loop())
    req = SummaryRequest("transcript", CondensationStrategyName.CONVERSATION_SUMMARY, 100)

    async def work() -> tuple[str, asyncio.AbstractEventLoop]:
        return await bridge.summarize(req, 5), asyncio.get_running_loop()

    text, worker_loop = await offloop.run(work, far())
    assert text == "summary"
    assert inner.loops == [asyncio.get_running_loop()] and worker_loop is not inner.loops[0]
    assert bridge.model == "summarizer" and bridge.context_window() is None


# -- sizing ---------------------------------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=5), inner, max_size=5),
    max_leaves=40,
)


def _chars(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return sum(_chars(v) for v in value.values())
    if isinstance(value, list):
        return sum(_chars(v) for v in value)
    return 0


@given(json_values, st.integers(min_value=0, max_value=200))
def test_larger_than_agrees_with_the_total_text_of_the_body(value: Any, chars: int) -> None:
    assert larger_than(value, chars) == (_chars(value) > chars)


def test_starting_the_worker_freezes_what_start_up_allocated_when_asked() -> None:
    import gc

    before = gc.get_threshold()
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)  # Python's defaults: another test's worker may have changed them
    plain = OffLoop(1)
    worker = OffLoop(1, gc_freeze=True)
    try:
        plain.start()
        assert gc.get_freeze_count() == 0  # not asked: the collector is left as it is
        assert gc.get_threshold() == (700, 10, 10)
        plain.close()
        worker.start()
        assert gc.get_freeze_count() > 1000  # the objects alive at the first request are exempt from collections
        # full collections, no longer held back by a large old generation, are made rarer
        assert gc.get_threshold() == (700, 10, FULL_GC_EVERY)
    finally:
        plain.close()
        worker.close()
        gc.unfreeze()
        gc.set_threshold(*before)


# -- interpreter-wide settings: left alone unless asked ----------------------------------------------
@pytest.fixture
def python_defaults(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The interpreter as Python sets it up (another test's worker may have changed it), restored after."""
    import gc
    import sys

    for name in ("CONTEXT_SWITCH_INTERVAL_MS", "CONTEXT_GC_FREEZE"):
        monkeypatch.delenv(name, raising=False)
    before = (sys.getswitchinterval(), gc.get_threshold())
    gc.unfreeze()
    sys.setswitchinterval(0.005)
    gc.set_threshold(700, 10, 10)
    try:
        yield
    finally:
        gc.unfreeze()
        sys.setswitchinterval(before[0])
        gc.set_threshold(*before[1])


def _managed_on_the_worker() -> dict[str, Any]:
    from litellm_ctx_hook.testing.session import generate_session

    messages = generate_session(turns=30, seed=11)["messages"]  # over INLINE_CHARS and over the limit
    return {"model": "agent-model-unknown", "messages": messages}


async def test_the_hook_with_default_settings_leaves_the_interpreter_as_it_is(python_defaults: None) -> None:
    import copy

    from litellm_ctx_hook.proxy.hook import ContextHook
    from litellm_ctx_hook.runtime.offloop import interpreter_settings
    from litellm_ctx_hook.settings import load_settings

    before = interpreter_settings()
    assert before["gc_frozen"] == 0
    hook = ContextHook(load_settings(real_text_model_tokens=12_000, context_speculative_condensation=False))
    try:
        assert (hook.settings.context_switch_interval_ms, hook.settings.context_gc_freeze) == (0.0, False)
        body = _managed_on_the_worker()
        out = await hook.async_pre_call_hook(None, None, copy.deepcopy(body), "acompletion")
        assert out["metadata"]["ctx_hook"]["actions"]  # managed: the worker started and did the work
        assert hook.offloop.loop is not None
        assert interpreter_settings() == before  # switch interval, thresholds, nothing frozen
    finally:
        hook.offloop.close()


async def test_the_opt_in_interpreter_settings_still_apply_at_the_first_request(python_defaults: None) -> None:
    import copy
    import gc
    import sys

    from litellm_ctx_hook.proxy.hook import ContextHook
    from litellm_ctx_hook.settings import load_settings

    hook = ContextHook(
        load_settings(
            real_text_model_tokens=12_000,
            context_speculative_condensation=False,
            context_switch_interval_ms=1.0,
            context_gc_freeze=True,
        )
    )
    try:
        assert sys.getswitchinterval() == 0.005 and gc.get_freeze_count() == 0  # nothing before a request
        await hook.async_pre_call_hook(None, None, copy.deepcopy(_managed_on_the_worker()), "acompletion")
        assert sys.getswitchinterval() == pytest.approx(0.001)
        assert gc.get_freeze_count() > 1000 and gc.get_threshold() == (700, 10, FULL_GC_EVERY)
    finally:
        hook.offloop.close()


def test_a_switch_interval_is_only_ever_shortened(python_defaults: None) -> None:
    import sys

    worker = OffLoop(1, switch_interval_s=0.01)  # longer than Python's 5 ms: left as it is
    try:
        worker.start()
        assert sys.getswitchinterval() == 0.005
    finally:
        worker.close()


async def test_optional_work_a_request_starts_runs_after_that_request_is_answered(offloop: OffLoop) -> None:
    import concurrent.futures

    offloop.start()
    answer: concurrent.futures.Future[str] | None = None
    seen: list[bool] = []

    async def speculative() -> None:
        assert answer is not None
        seen.append(answer.done())  # its long first stretch would run here, before the answer left

    async def request() -> str:
        offloop.spawn(speculative, far())
        await asyncio.sleep(0)  # a request goes on after starting it, and then ends
        return "answer"

    loop = offloop.loop
    assert loop is not None
    answer = asyncio.run_coroutine_threadsafe(offloop.admitted(request, far()), loop)
    assert await asyncio.wrap_future(answer) == "answer"
    await offloop.drain()
    assert seen == [True]
