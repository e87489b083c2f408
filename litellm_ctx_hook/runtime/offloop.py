"""Where the plugin's work runs: heavy work on a worker thread with its own event loop, off the
proxy's loop, and every step the plugin takes on the proxy's loop timed.

A LiteLLM proxy serves all its requests on one event loop: anything the plugin computes there
holds up every request, small ones included. Managing a long conversation is up to hundreds of
milliseconds of Python (parsing, counting, planning, condensing, verifying, rendering), so
:class:`OffLoop` runs it on one worker thread with an event loop of its own; the proxy's loop only
hands the request over and takes the result back. The summary cache's Redis client follows the
worker's loop (all cache work happens there); summariser calls go back to the proxy's loop, where
LiteLLM's router and its HTTP clients live (:class:`LoopBridge`). The worker shares the
interpreter lock with the proxy's loop, so it computes in slices and waits for that loop to be
idle between them (:mod:`pacing`).

Nothing here changes the interpreter for the rest of the process unless asked: a shorter thread
switch interval (``switch_interval_s``, ``CONTEXT_SWITCH_INTERVAL_MS``) and a frozen garbage
collector with rarer full collections (``gc_freeze``, ``CONTEXT_GC_FREEZE``) apply to every request
the proxy serves, managed or not, and are off by default (:func:`interpreter_settings` says what
they are).

At most ``CONTEXT_MAX_CONCURRENT`` requests are managed at once; the rest wait in order. A request
still waiting when its queue deadline passes is managed anyway (over the bound, counted as an
overrun): its time budget is then mostly spent, so it takes the quickest verified result, and it is
never forwarded unmanaged. Optional work (speculative summaries) is dropped past its deadline, or at
once while requests wait; it always gives way to the proxy's loop (a request does only in the first
half of its budget).

:func:`timed` drives a coroutine step by step and times each step: a step is exactly one
synchronous section of the plugin's code on the running loop (from a resume to the next
suspension), which :class:`SectionTimer` records.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Generator, Mapping
from typing import Any, Generic, Protocol, TypeVar, cast

from . import pacing

log = logging.getLogger(__name__)

T = TypeVar("T")

WORKER_NAME = "litellm-ctx-hook-worker"
INLINE_CHARS = 20_000  # requests with less text than this are managed on the proxy's loop (a few ms)
QUEUE_SHARE = 0.5  # of a request's time budget it may wait for a slot
LONG_SECTION_S = 0.02  # a section longer than this is a loop stall worth counting
FULL_GC_EVERY = 100  # middle-generation collections per full one once start-up is frozen (Python: 10)


def interpreter_settings() -> dict[str, object]:
    """The interpreter-wide settings the plugin may change (when asked), as they are now: to check
    that a process is left as Python and LiteLLM set it up."""
    return {
        "switch_interval_s": sys.getswitchinterval(),
        "gc_threshold": gc.get_threshold(),
        "gc_frozen": gc.get_freeze_count(),
    }


def on_worker() -> bool:
    """Whether the calling code runs on an :class:`OffLoop` worker thread."""
    return threading.current_thread().name == WORKER_NAME


class OffLoop:
    """One worker thread with its own event loop, and a bound on the work it runs at once."""

    def __init__(
        self,
        limit: int,
        *,
        switch_interval_s: float = 0.0,
        gc_freeze: bool = False,
        slice_s: float = 0.0,
    ) -> None:
        self.limit = limit
        self.switch_interval_s = switch_interval_s
        self.gc_freeze = gc_freeze
        # the worker's work in slices, giving way to the proxy's loop between them (:mod:`pacing`)
        self.pacer = pacing.Pacer(slice_s) if slice_s > 0 else None
        self.overruns = 0  # requests admitted over the bound after their queue deadline
        self.dropped = 0  # optional work dropped at its queue deadline
        self.peak_queue = 0
        self._waiting = 0
        self._serving = 0  # requests being managed on the worker (optional work starts after them)
        self._quiet: asyncio.Event | None = None  # set while none is
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._slots: asyncio.Semaphore | None = None
        self._spawned: set[concurrent.futures.Future[Any]] = set()

    # -- the worker -----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker now (the hook does at its first request, when the proxy has started);
        called on the proxy's loop, that loop is the one the worker gives way to."""
        worker = self._ensure()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self.pacer is not None and running is not worker:
            self.pacer.loop = running

    def _ensure(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._thread is None or not self._thread.is_alive():
                loop = asyncio.new_event_loop()
                ready = threading.Event()

                def serve() -> None:
                    asyncio.set_event_loop(loop)
                    pacing.install(self.pacer)
                    self._slots = asyncio.Semaphore(self.limit)
                    self._quiet = asyncio.Event()
                    self._quiet.set()
                    loop.call_soon(ready.set)
                    loop.run_forever()

                if self.gc_freeze:  # opt-in: it changes the collector for the whole process
                    # A LiteLLM proxy holds millions of objects from its start-up; a full collection
                    # scans them all (hundreds of ms, every thread stopped), and the plugin's work
                    # makes full collections come sooner. Frozen, they are never scanned again.
                    gc.freeze()
                    # Python runs a full collection only once the old generation has grown by a
                    # quarter since the last one. After the freeze that generation is small, so
                    # the rule no longer holds them back: one came every 10th middle collection
                    # (about every 20 s under load, 20-25 ms each, every thread stopped).
                    # A third threshold of FULL_GC_EVERY makes them ten times rarer.
                    young, middle, old = gc.get_threshold()
                    gc.set_threshold(young, middle, max(old, FULL_GC_EVERY))
                if 0 < self.switch_interval_s < sys.getswitchinterval():
                    # Opt-in. The worker holds the GIL while it computes; the proxy's loop waits up
                    # to one switch interval for it after each system call. A shorter interval
                    # shortens that wait, but makes every thread of the process (LiteLLM's own
                    # included) hand the GIL over more often, on every request the proxy serves.
                    sys.setswitchinterval(self.switch_interval_s)
                thread = threading.Thread(target=serve, name=WORKER_NAME, daemon=True)
                thread.start()
                ready.wait()
                self._loop, self._thread = loop, thread
            return self._loop

    def close(self) -> None:
        """Stop the worker thread (work still queued is abandoned)."""
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(timeout=5)
            loop.close()

    # -- running work ---------------------------------------------------------------------------
    async def run(self, work: Callable[[], Awaitable[T]], deadline: float | None) -> T:
        """``await work()`` on the worker (directly when already there), admitted by ``deadline``
        (a ``time.perf_counter()`` instant) or over the bound after it; ``None``: outside the bound."""
        if on_worker():
            return await work()
        future = asyncio.run_coroutine_threadsafe(self.admitted(work, deadline), self._ensure())
        return cast(T, await asyncio.wrap_future(future))

    async def admitted(self, work: Callable[[], Awaitable[T]], deadline: float | None) -> T | None:
        """A request's work on the worker. Public, unlike the background work's coroutines, so that
        a shutdown never cancels a request still being served (:mod:`shutdown`)."""
        return await self._admitted(work, deadline, optional=False)

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The worker's event loop, once started."""
        return self._loop

    def spawn(self, work: Callable[[], Awaitable[Any]], deadline: float | None) -> None:
        """Start optional background work on the worker; it is dropped if no slot frees by
        ``deadline``, and at once while requests wait for a slot (it would only add to their wait)."""
        if self._waiting:
            self.dropped += 1
            return
        coro = self._admitted(work, deadline, optional=True)
        if on_worker():
            task = asyncio.get_running_loop().create_task(coro)
            future: concurrent.futures.Future[Any] = concurrent.futures.Future()
            task.add_done_callback(lambda t: _settle(future, t))
        else:
            future = asyncio.run_coroutine_threadsafe(coro, self._ensure())
        self._spawned.add(future)
        future.add_done_callback(self._spawned.discard)

    @property
    def thread(self) -> threading.Thread | None:
        """The worker's thread, once started (None before and after it runs)."""
        return self._thread

    @property
    def pending(self) -> int:
        """Background work started with :meth:`spawn` and not finished."""
        return len(self._spawned)

    async def drain(self) -> None:
        """Wait for the background work started with :meth:`spawn` (tests, shutdown)."""
        while self._spawned:
            await asyncio.gather(*(asyncio.wrap_future(f) for f in list(self._spawned)), return_exceptions=True)

    async def _steps(self, work: Awaitable[T], deadline: float | None) -> T:
        """``await work``; with a pacer, each step starts a slice, polite until ``deadline``."""
        pacer = self.pacer
        if pacer is not None and asyncio.iscoroutine(work):
            result: T = await _Stepped(work, lambda: pacer.begin(deadline), pacer.end)
            return result
        return await work

    async def _admitted(self, work: Callable[[], Awaitable[T]], deadline: float | None, *, optional: bool) -> T | None:
        if optional:
            if not await self._after_requests(deadline):
                self.dropped += 1
                return None
        else:
            self._serving += 1
            if self._quiet is not None:
                self._quiet.clear()
        try:
            return await self._admitted_now(work, deadline, optional=optional)
        finally:
            if not optional:
                self._serving -= 1
                if self._serving == 0 and self._quiet is not None:
                    self._quiet.set()

    async def _after_requests(self, deadline: float | None) -> bool:
        """Wait until no request is being managed on the worker and the answer of the last one is
        on its way; ``False`` if ``deadline`` passed first. Optional work is started by a request
        (a speculative summary at CAUTION): started at once, its first synchronous stretch
        (hundreds of milliseconds of condensing) would run before that request's answer leaves
        the worker's loop."""
        try:
            left = None if deadline is None else max(0.0, deadline - time.perf_counter())
            async with asyncio.timeout(left):
                while self._serving and self._quiet is not None:
                    await self._quiet.wait()
        except TimeoutError:
            return False
        # The last request's answer is delivered by callbacks its end scheduled: let them run first.
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return True

    async def _admitted_now(
        self, work: Callable[[], Awaitable[T]], deadline: float | None, *, optional: bool
    ) -> T | None:
        if deadline is None:
            return await self._steps(work(), deadline)
        slots = self._slots
        assert slots is not None
        self._waiting += 1
        self.peak_queue = max(self.peak_queue, self._waiting)
        try:
            async with asyncio.timeout(max(0.0, deadline - time.perf_counter())):
                await slots.acquire()
            admitted = True
        except TimeoutError:
            admitted = False
        finally:
            self._waiting -= 1
        if not admitted:
            if optional:
                self.dropped += 1
                return None
            self.overruns += 1
        try:
            # optional work has no budget to keep: it gives way to the proxy's loop to the end
            return await self._steps(work(), None if optional else deadline)
        finally:
            if admitted:
                slots.release()

    def snapshot(self) -> dict[str, int]:
        return {
            "limit": self.limit,
            "waiting": self._waiting,
            "peak_queue": self.peak_queue,
            "queue_overruns": self.overruns,
            "background_dropped": self.dropped,
        }


def _settle(future: concurrent.futures.Future[Any], task: asyncio.Task[Any]) -> None:
    if task.cancelled():
        future.cancel()
    elif task.exception() is not None:
        future.set_exception(task.exception())
    else:
        future.set_result(task.result())


R = TypeVar("R")
R_contra = TypeVar("R_contra", contravariant=True)


class Summarizing(Protocol[R_contra]):
    """What :class:`LoopBridge` needs of a summariser (``condensing.summarizer.Summarizer`` is one):
    the runtime layer names no type of the layers above it."""

    model: str

    async def summarize(self, req: R_contra, timeout: float) -> str: ...


class LoopBridge(Generic[R]):
    """A summariser whose calls run on the loop it was made on (the proxy's), awaited from any loop."""

    def __init__(self, inner: Summarizing[R], loop: asyncio.AbstractEventLoop) -> None:
        self.inner = inner
        self.loop = loop
        self.model = inner.model

    def context_window(self) -> int | None:
        probe = getattr(self.inner, "context_window", None)
        window = probe() if callable(probe) else None
        return window if isinstance(window, int) else None

    async def summarize(self, req: R, timeout: float) -> str:
        if asyncio.get_running_loop() is self.loop:
            return await self.inner.summarize(req, timeout)
        future = asyncio.run_coroutine_threadsafe(self.inner.summarize(req, timeout), self.loop)
        return await asyncio.wrap_future(future)  # cancelling this cancels the call on the proxy's loop


# -- timing the plugin's steps on the loop --------------------------------------------------------
class SectionTimer:
    """Durations of the plugin's synchronous sections on the proxy's loop (thread-safe)."""

    def __init__(self, observe: Callable[[float], None] | None = None) -> None:
        self._lock = threading.Lock()
        self._observe = observe
        self.count = 0
        self.total_s = 0.0
        self.max_s = 0.0
        self.long = 0  # sections longer than LONG_SECTION_S

    def record(self, seconds: float) -> None:
        with self._lock:
            self.count += 1
            self.total_s += seconds
            self.max_s = max(self.max_s, seconds)
            self.long += seconds > LONG_SECTION_S
        if self._observe is not None:
            self._observe(seconds)

    def reset(self) -> None:
        with self._lock:
            self.count, self.total_s, self.max_s, self.long = 0, 0.0, 0.0, 0

    def snapshot(self) -> Mapping[str, float]:
        with self._lock:
            return {
                "sections": self.count,
                "max_ms": round(self.max_s * 1000, 3),
                "mean_ms": round(self.total_s * 1000 / self.count, 3) if self.count else 0.0,
                "over_20ms": self.long,
            }


class _Stepped:
    """Drives a coroutine step by step (a step: from a resume to the next suspension), calling
    ``begin()`` before each step and ``end(begin's value)`` after it."""

    def __init__(self, coro: Coroutine[Any, Any, Any], begin: Callable[[], Any], end: Callable[[Any], None]) -> None:
        self._coro = coro
        self._begin = begin
        self._end = end

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, begin, end = self._coro, self._begin, self._end
        send: Any = None
        error: BaseException | None = None
        while True:
            token = begin()
            try:
                yielded = coro.send(send) if error is None else coro.throw(error)
            except StopIteration as stop:
                end(token)
                return stop.value
            except BaseException:
                end(token)
                raise
            end(token)
            try:
                send, error = (yield yielded), None
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # cancellation and other throws go to the inner coroutine
                send, error = None, exc


async def timed(coro: Coroutine[Any, Any, T], timer: SectionTimer) -> T:
    """``await coro``, recording the duration of each of its steps in ``timer``."""
    record = timer.record
    result: T = await _Stepped(coro, time.perf_counter, lambda started: record(time.perf_counter() - started))
    return result


async def in_thread_if(heavy: bool, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``, in a thread when ``heavy`` and called on the proxy's loop (the worker is off
    that loop already: another thread would only contend for the GIL)."""
    if heavy and not on_worker():
        return await asyncio.to_thread(fn, *args)
    return fn(*args)


def larger_than(value: Any, chars: int) -> bool:
    """Whether the strings inside ``value`` (JSON data) add up to more than ``chars`` characters;
    stops as soon as they do, so a large body costs no more than a small one."""
    stack = [value]
    total = 0
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
            if total > chars:
                return True
        elif isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list | tuple):
            stack.extend(item)
    return False
