"""The worker's slices: it gives way to the proxy's loop between them, and only the worker does."""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from collections.abc import Callable

from support import settings

from litellm_ctx_hook.proxy.hook import ContextHook
from litellm_ctx_hook.runtime import pacing
from litellm_ctx_hook.runtime.offloop import OffLoop
from litellm_ctx_hook.runtime.pacing import Pacer, pace
from litellm_ctx_hook.testing.session import generate_session


def giving_way_to(loop: asyncio.AbstractEventLoop, wait_s: float) -> Pacer:
    """A pacer whose every call to ``pace`` is past its slice."""
    pacer = Pacer(slice_s=1e-9, wait_s=wait_s)
    pacer.loop = loop
    return pacer


def in_thread(fn: Callable[[], None]) -> threading.Thread:
    thread = threading.Thread(target=fn)
    thread.start()
    return thread


async def test_a_spent_slice_waits_until_the_loop_has_run_what_was_ready() -> None:
    loop = asyncio.get_running_loop()
    pacer = giving_way_to(loop, wait_s=30)
    events: list[str] = []
    asked = threading.Event()

    def worker() -> None:
        pacing.install(pacer)
        asked.set()
        pace()
        events.append("worker goes on")

    def busy() -> None:  # the loop's own work, running when the worker asks
        asked.wait(30)
        time.sleep(0.1)
        events.append("loop done")

    loop.call_soon(busy)
    thread = in_thread(worker)
    await asyncio.to_thread(thread.join, 30)
    assert events == ["loop done", "worker goes on"]
    assert pacer.pauses == 1


async def test_a_step_past_its_polite_instant_does_not_give_way() -> None:
    loop = asyncio.get_running_loop()
    pacer = giving_way_to(loop, wait_s=30)

    def worker() -> None:
        pacing.install(pacer)
        pacer.begin(polite_until=time.perf_counter() - 1)  # half its time budget is spent
        pace()

    thread = in_thread(worker)
    thread.join(30)  # blocks the loop: a pause would wait for it
    assert not thread.is_alive() and pacer.pauses == 0


async def test_the_wait_for_a_blocked_loop_is_bounded() -> None:
    loop = asyncio.get_running_loop()
    pacer = giving_way_to(loop, wait_s=0.05)
    events: list[str] = []
    released = threading.Event()

    def worker() -> None:
        pacing.install(pacer)
        pace()
        events.append("worker goes on")
        released.set()

    def blocked() -> None:  # a loop stalled far longer than the worker waits
        released.wait(30)
        events.append("loop done")

    loop.call_soon(blocked)
    thread = in_thread(worker)
    await asyncio.sleep(0.01)
    thread.join(30)
    assert events == ["worker goes on", "loop done"]  # the worker went on while the loop was still stalled


def test_pace_does_nothing_on_a_thread_without_a_pacer_or_within_a_slice() -> None:
    pacing.install(None)
    pace()  # no pacer: returns at once
    idle = asyncio.new_event_loop()  # never running: a pause would wait out wait_s
    try:
        pacer = Pacer(slice_s=60, wait_s=30)
        pacer.loop = idle
        pacing.install(pacer)
        pace()  # within its slice
        assert pacer.pauses == 0
    finally:
        pacing.install(None)
        idle.close()
    closed = Pacer(slice_s=1e-9, wait_s=30)
    closed.loop = idle  # closed: nothing to give way to
    pacing.install(closed)
    try:
        pace()
        assert closed.pauses == 0
    finally:
        pacing.install(None)


async def test_the_worker_gives_way_to_the_loop_that_started_it_not_to_its_own() -> None:
    worker = OffLoop(1, slice_s=0.001)
    try:
        worker.start()
        assert worker.pacer is not None and worker.pacer.loop is asyncio.get_running_loop()

        async def on_worker() -> bool:
            return pacing.current() is worker.pacer

        assert await worker.run(on_worker, None)
        assert pacing.current() is None  # the proxy's loop itself is never paced
    finally:
        worker.close()
    assert OffLoop(1).pacer is None  # CONTEXT_WORKER_SLICE_MS=0


async def test_slicing_changes_nothing_in_the_result_and_pauses_once_a_message_at_least() -> None:
    body = {"model": "agent-model-unknown", "messages": generate_session(turns=30, seed=30)["messages"]}
    outs = []
    for slice_ms in (0.0, 1e-6):  # never, and at every point the core offers
        hook = ContextHook(
            settings(
                real_text_model_tokens=12_000,
                context_speculative_condensation=False,
                context_worker_slice_ms=slice_ms,
            )
        )
        try:
            outs.append(await hook.async_pre_call_hook(None, None, copy.deepcopy(body), "acompletion"))
            if slice_ms:
                assert hook.offloop.pacer is not None
                assert hook.offloop.pacer.pauses >= len(body["messages"])
        finally:
            hook.offloop.close()
    assert outs[0]["messages"] == outs[1]["messages"] != body["messages"]
    assert outs[0]["metadata"]["ctx_hook"]["tokens_after"] == outs[1]["metadata"]["ctx_hook"]["tokens_after"]
