"""The worker thread gives way to the proxy's event loop.

The plugin's worker thread (:mod:`offloop`) and the proxy's loop share one interpreter lock. While
the worker computes, every step of the loop's own work (LiteLLM parsing a body, routing,
streaming a reply) waits for the lock after each system call and is then interrupted every switch
interval: a loop busy for 8 ms while the worker computes takes about twice as long.

So the worker computes in slices, and the loop comes first. The core's long loops call
:func:`pace` once per item (a message counted or parsed, a unit scored or selected); on the
worker, once its slice is used up, ``pace`` releases the lock and waits until the proxy's loop is
idle, at most ``wait_s`` (10 ms) in all. Idle is found by hops through the loop
(``call_soon_threadsafe`` then ``call_soon``: it runs after the callbacks that were ready): a hop
that comes back at once found the loop idle; one that took longer found it busy, and the worker
hops again after a nap of ``BUSY_NAP_S``. On any other thread ``pace`` does nothing.

A saturated proxy's loop is never idle: the worker then computes one slice in every 11 ms, and a
request's management would outlast its time budget. So a request gives way only in the first half
of its budget (the half it may also wait in the worker's queue); past it, it computes at the
lock's usual share.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time

_local = threading.local()
IDLE_HOP_S = 0.00025  # a hop through an idle loop takes about 0.05 ms here; through a busy one, as long as it is busy
BUSY_NAP_S = 0.0005  # after a hop that found the loop busy (hops in a row would only add to its work)


class Pacer:
    """Slices of at most ``slice_s`` for the thread it is installed on, with a wait of at most
    ``wait_s`` for the proxy's loop between them."""

    def __init__(self, slice_s: float, wait_s: float = 0.01) -> None:
        self.slice_s = slice_s
        self.wait_s = wait_s
        self.loop: asyncio.AbstractEventLoop | None = None  # the loop given way to (the proxy's)
        self.pauses = 0  # times the worker gave way
        self.waited_s = 0.0  # time spent giving way
        self.longest_s = 0.0  # the longest stretch of the worker's work without a pause
        self._since = time.perf_counter()
        self._polite_until = math.inf

    def begin(self, polite_until: float | None = None) -> None:
        """A stretch of work starts (a step of the worker's work: from a resume to a suspension);
        its work gives way until ``polite_until`` (a ``time.perf_counter()`` instant), not after."""
        self._since = time.perf_counter()
        self._polite_until = math.inf if polite_until is None else polite_until

    def end(self, _: object = None) -> None:
        """The stretch ends at a suspension (the worker waits anyway)."""
        self.longest_s = max(self.longest_s, time.perf_counter() - self._since)

    def __call__(self) -> None:
        started = time.perf_counter()
        if started - self._since < self.slice_s:
            return
        self.longest_s = max(self.longest_s, started - self._since)
        loop = self.loop
        if loop is not None and not loop.is_closed() and started < self._polite_until:
            self.pauses += 1
            deadline = started + self.wait_s
            while (left := deadline - time.perf_counter()) > 0 and not _idle(loop, left):
                time.sleep(max(0.0, min(BUSY_NAP_S, deadline - time.perf_counter())))
        self._since = time.perf_counter()
        self.waited_s += self._since - started

    def snapshot(self) -> dict[str, float]:
        return {
            "pauses": self.pauses,
            "waited_ms": round(self.waited_s * 1000, 3),
            "longest_stretch_ms": round(self.longest_s * 1000, 3),
        }

    def reset(self) -> None:
        self.pauses, self.waited_s, self.longest_s = 0, 0.0, 0.0


def _idle(loop: asyncio.AbstractEventLoop, timeout: float) -> bool:
    """Whether ``loop`` turned out idle: a hop through it came back within ``IDLE_HOP_S`` (a
    closed loop counts as idle: there is nothing to give way to)."""
    started = time.perf_counter()
    ready = threading.Event()
    try:
        loop.call_soon_threadsafe(loop.call_soon, ready.set)
    except RuntimeError:  # closed
        return True
    ready.wait(timeout)
    return time.perf_counter() - started < IDLE_HOP_S


def install(pacer: Pacer | None) -> None:
    """Pace the calling thread's work with ``pacer`` (``None``: never)."""
    _local.pacer = pacer


def current() -> Pacer | None:
    """The calling thread's pacer, if it has one."""
    pacer: Pacer | None = getattr(_local, "pacer", None)
    return pacer


def pace() -> None:
    """A point in a long computation where the worker may give way to the proxy's loop."""
    pacer = current()
    if pacer is not None:
        pacer()
