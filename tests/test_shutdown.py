"""Background work stops with the server: the plugin's tasks are found, cancelled on the server's
signal, and release their single-flight locks in (real) Redis; a script keeps Python's handlers."""

from __future__ import annotations

import asyncio
import secrets
import signal
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest
import redis
from support import settings
from test_condensation_model import LIMIT, SlowModel, openai_chat

from litellm_ctx_hook.cache.store import SummaryCache
from litellm_ctx_hook.conversation import Format
from litellm_ctx_hook.engine.engine import ContextEngine
from litellm_ctx_hook.runtime.shutdown import ShutdownGuard, background_tasks, cancel_background


@pytest.fixture
def restore_handlers() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


async def test_only_the_plugins_background_tasks_are_found() -> None:
    model = SlowModel(delay_s=30)
    eng = ContextEngine(
        settings(context_speculative_condensation=False, max_context_processing_time=100), summarizer=model
    )
    await eng.manage({"messages": openai_chat(30)}, Format.OPENAI, "gpt-4o", limit=LIMIT)
    foreign = asyncio.create_task(asyncio.sleep(30))
    public = asyncio.create_task(eng.manage({"messages": openai_chat(2)}, Format.OPENAI, "gpt-4o", limit=LIMIT))
    await asyncio.sleep(0)
    found = background_tasks(asyncio.get_running_loop())
    assert [t.get_coro().__name__ for t in found] == ["_model_flight"]  # type: ignore[union-attr]
    assert await cancel_background() == 1
    assert found[0].cancelled()
    assert not foreign.done()  # not the plugin's: left alone
    await public  # a request being served is never cancelled
    foreign.cancel()


async def test_a_script_keeps_pythons_handlers(restore_handlers: None) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    guard = ShutdownGuard()
    assert guard.install() is False
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


async def test_the_servers_signal_cancels_background_summaries_and_frees_their_locks(
    redis_url: str, restore_handlers: None
) -> None:
    received: list[int] = []

    def server_handler(signum: int, frame: FrameType | None) -> Any:  # what uvicorn installs
        received.append(signum)

    signal.signal(signal.SIGTERM, server_handler)
    s = settings(context_speculative_condensation=False, max_context_processing_time=100, redis_url=redis_url)
    eng = ContextEngine(s, summarizer=SlowModel(delay_s=60), cache=SummaryCache.from_settings(s))
    scope = f"team-shutdown{secrets.token_hex(4)}"
    guard = ShutdownGuard()
    assert guard.install()
    conv = openai_chat(30)
    out = await eng.manage({"messages": conv}, Format.OPENAI, "gpt-4o", limit=LIMIT, scope=scope)
    assert out.metadata["summary"]["summaries"][0]["provisional"]  # the model's summary goes on in the background
    client = redis.Redis.from_url(redis_url)
    try:
        for _ in range(100):
            if list(client.scan_iter(match=f"ctxhook:v1:lock:{scope}:*")):
                break
            await asyncio.sleep(0.02)
        assert list(client.scan_iter(match=f"ctxhook:v1:lock:{scope}:*")), "the background summary holds its lock"
        signal.raise_signal(signal.SIGTERM)
        assert received == [signal.SIGTERM]  # the server's own handler still runs
        for _ in range(200):
            if guard.cancelled is not None:
                break
            await asyncio.sleep(0.01)
        assert guard.cancelled == 1
        assert not list(client.scan_iter(match=f"ctxhook:v1:lock:{scope}:*"))  # released at once, not expired
        assert not background_tasks(asyncio.get_running_loop())
    finally:
        for key in client.scan_iter(match=f"ctxhook:*{scope}*"):
            client.delete(key)
        client.close()


async def test_background_work_on_the_worker_thread_is_cancelled_but_not_a_requests_work() -> None:
    from litellm_ctx_hook.runtime.offloop import OffLoop

    offloop = OffLoop(2)
    started, finished = asyncio.Event(), []
    loop = asyncio.get_running_loop()

    async def background() -> None:
        await asyncio.sleep(30)
        finished.append("background")

    async def request() -> str:
        loop.call_soon_threadsafe(started.set)
        await asyncio.sleep(0.5)
        return "served"

    try:
        offloop.spawn(background, None)
        served = asyncio.create_task(offloop.run(request, None))
        await started.wait()
        guard = ShutdownGuard(lambda: [offloop.loop] if offloop.loop is not None else [])
        await guard.stop()
        assert guard.cancelled == 1 and offloop.pending == 0  # the spawned work, nothing else
        assert await served == "served" and finished == []
    finally:
        offloop.close()
