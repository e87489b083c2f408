"""Speculative condensation: at CAUTION, the summary the WARNING turn will need, made in the
background so that turn is a cache hit and sends a prefix already verified.

:class:`Speculation` knows nothing of the engine: it is given the condensation request (made when
the work starts), the regions and target the WARNING turn would use, and a callback that takes
the condensed result (the engine verifies it and remembers it for the conversation's next turn).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from functools import partial

from ..condensing.condensation import Condenser, Request
from ..condensing.summarizer import Summarizer
from ..planning.plan import Regions
from ..planning.tiers import Work
from ..runtime.logs import log_fault
from ..runtime.offloop import OffLoop
from ..runtime.stats import EngineStats
from ..settings import Settings

log = logging.getLogger(__name__)

Ready = Callable[[Work], None]  # takes a speculative result (verifies it, remembers it)


class Speculation:
    """The background summaries of one engine: on its executor when it has one (dropped while
    requests wait for its slots, or if one cannot start within the queue deadline), else on the
    running loop; never more at once than ``CONDENSATION_PARALLEL_REQUESTS``."""

    def __init__(
        self, settings: Settings, condenser: Condenser, stats: EngineStats, executor: OffLoop | None, queue_s: float
    ) -> None:
        self.settings = settings
        self.condenser = condenser
        self.stats = stats
        self.executor = executor
        self.queue_s = queue_s
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        """Speculative summaries under way on the caller's loop (the executor counts its own)."""
        return len(self._tasks)

    def start(
        self,
        request: Callable[[], Request],
        reg: Regions,
        target: int,
        summarizer: Summarizer | None,
        ready: Ready | None,
    ) -> None:
        """Start :meth:`_summary` in the background, unless as many are under way already."""
        executor = self.executor
        if len(self._tasks) + (executor.pending if executor is not None else 0) >= (
            self.settings.condensation_parallel_requests
        ):
            return
        work = partial(self._summary, request, reg, target, summarizer, ready)
        if executor is not None:
            executor.spawn(work, time.perf_counter() + self.queue_s)
            return
        task = asyncio.get_running_loop().create_task(work())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _summary(
        self,
        request: Callable[[], Request],
        reg: Regions,
        target: int,
        summarizer: Summarizer | None,
        ready: Ready | None,
    ) -> None:
        """Condense as the WARNING turn would (reusing what earlier turns cached) and hand the
        result to ``ready``; never raises. Private, as background work is, so that a server's
        shutdown cancels it (:mod:`shutdown`)."""
        try:
            req = request()  # timed from now: it may have waited for the executor
            condensed = await self.condenser.reuse(req, reg, summarizer)  # condensed on an earlier turn?
            if condensed is None:
                condensed = await self.condenser.condense(req, reg, target, summarizer)
                if condensed is None:
                    return
                self.stats.bump("speculative_condensations")
            if ready is not None:
                pinned = [i for i in range(len(req.conversation.messages)) if reg.pinned(i)]
                summary = {"summaries": condensed.details}
                ready(Work(condensed.messages, pinned, condensed.actions, summary=summary))
        except Exception as exc:  # the exception's message may quote the conversation: at DEBUG only
            log_fault(log, "speculative condensation failed (the request was not affected)", exc)
