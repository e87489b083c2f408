"""Background work ends with the server process, and releases what it holds.

Summaries made in the background (speculative ones at CAUTION, model summaries that outlast
their request) are tasks on the server's event loop, or on the loop of the plugin's worker thread
(:mod:`offloop`) when the request was managed there. Uvicorn, alone or as gunicorn's worker,
turns SIGTERM into a graceful shutdown, and once its lifespan has shut down it re-raises the
signal with the default handler: the process ends before asyncio would cancel the remaining
tasks. A summary still being made would keep its single-flight lock in Redis until the lock
expires (``CONDENSATION_TIMEOUT`` + 2 s), and the other replicas would wait for it that long.

:class:`ShutdownGuard` chains a handler on SIGTERM and SIGINT in front of the server's own, only
where a server has installed one (a script using the library keeps Python's defaults). On the
signal it cancels the plugin's background tasks and waits for them, while the server drains its
requests; their ``finally`` blocks release their locks. The server's handler then runs as before.

The plugin's background tasks are recognised by their coroutine: a private coroutine function
(``_name``) of this package. The public entry points (the hook, the API, and
:meth:`OffLoop.admitted`, a request's work on the worker) never run as such tasks, so a request
still being served is never cancelled here.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

log = logging.getLogger("litellm_ctx_hook")

PACKAGE = __name__.partition(".")[0]  # the whole plugin, not only this module's group
SIGNALS = (signal.SIGTERM, signal.SIGINT)

Handler = Callable[[int, FrameType | None], Any]


def background_tasks(loop: asyncio.AbstractEventLoop) -> list[asyncio.Task[Any]]:
    """The pending tasks of ``loop`` that this package started in the background."""
    out = []
    for task in asyncio.all_tasks(loop):
        coro = task.get_coro()
        frame = getattr(coro, "cr_frame", None)
        name = getattr(coro, "__name__", "")
        module = frame.f_globals.get("__name__", "") if frame is not None else ""
        ours = module == PACKAGE or module.startswith(PACKAGE + ".")
        if ours and name.startswith("_") and not task.done():
            out.append(task)
    return out


async def cancel_background(loop: asyncio.AbstractEventLoop | None = None) -> int:
    """Cancel the package's background tasks and wait until they have stopped; how many there were.

    A task may start another while it stops (a cancelled wait falling back): repeat until none is left.
    """
    loop = loop or asyncio.get_running_loop()
    cancelled = 0
    for _ in range(10):
        tasks = [t for t in background_tasks(loop) if t is not asyncio.current_task(loop)]
        if not tasks:
            break
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        cancelled += len(tasks)
    return cancelled


class ShutdownGuard:
    """Cancels the plugin's background work when the server is told to stop (see the module doc)."""

    def __init__(self, other_loops: Callable[[], list[asyncio.AbstractEventLoop]] = list) -> None:
        self.other_loops = other_loops  # loops of the plugin's own threads, whose background work stops too
        self.installed = False
        self._tried = False
        self.cancelled: int | None = None  # set once the background work was cancelled
        self._task: asyncio.Task[None] | None = None

    def install(self) -> bool:
        """Chain the handlers; call it from the server's event loop. Tried once; ``False`` when
        there is no server handler to chain on (or not on the main thread)."""
        if self._tried:
            return self.installed
        self._tried = True
        if threading.current_thread() is not threading.main_thread():
            return False
        try:
            loop = asyncio.get_running_loop()
            for sig in SIGNALS:
                previous = signal.getsignal(sig)
                if callable(previous) and previous is not signal.default_int_handler:
                    signal.signal(sig, self._handler(loop, previous))
                    self.installed = True
        except Exception as exc:  # no loop, or signals not settable here: never a request's problem
            log.debug("litellm-ctx-hook: no shutdown handler installed: %s", exc)
        return self.installed

    def _handler(self, loop: asyncio.AbstractEventLoop, previous: Handler) -> Handler:
        def on_signal(signum: int, frame: FrameType | None) -> Any:
            if self._task is None and not loop.is_closed():
                loop.call_soon_threadsafe(self._start, loop)
            return previous(signum, frame)

        return on_signal

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._task is None:
            self._task = loop.create_task(self.stop(loop))

    async def stop(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Cancel the background work now (also for servers that stop the plugin themselves)."""
        self.cancelled = await cancel_background(loop)
        for other in self.other_loops():
            if other.is_running():
                future = asyncio.run_coroutine_threadsafe(cancel_background(other), other)
                self.cancelled += await asyncio.wrap_future(future)
        if self.cancelled:  # work lost: the following turns make these summaries again
            log.warning("litellm-ctx-hook: shutting down, %d background summaries cancelled", self.cancelled)
