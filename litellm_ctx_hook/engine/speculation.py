"""Speculative condensation: at CAUTION, the summary the WARNING turn will need, made in the
background so that turn is a cache hit and sends a prefix already verified."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from ..adapters import MESSAGES_KEY
from ..analysis.risk import ContextRiskLevel, target_tokens
from ..condensing.condensation import Request
from ..condensing.summarizer import Summarizer
from ..planning.plan import fitting_regions
from ..planning.tiers import Work
from ..runtime.logs import log_fault

if TYPE_CHECKING:
    from ..analysis.analyzer import Analysis
    from .engine import ContextEngine

log = logging.getLogger(__name__)


def start_speculation(
    engine: ContextEngine,
    a: Analysis,
    caller: Mapping[str, Any],
    summarizer: Summarizer | None,
    scope: str,
    key: str | None,
) -> None:
    """Start :func:`_speculative_summary` in the background: on the engine's executor when it has
    one (dropped while requests wait for its slots, or if it cannot start within the queue
    deadline), else on the running loop; never more at once than ``CONDENSATION_PARALLEL_REQUESTS``."""
    executor = engine.executor
    if len(engine._speculating) + (executor.pending if executor is not None else 0) >= (
        engine.settings.condensation_parallel_requests
    ):
        return
    work = partial(_speculative_summary, engine, a, caller, summarizer, scope, key)
    if executor is not None:
        executor.spawn(work, time.perf_counter() + engine._queue_s)
        return
    task = asyncio.get_running_loop().create_task(work())
    engine._speculating.add(task)
    task.add_done_callback(engine._speculating.discard)


async def _speculative_summary(
    engine: ContextEngine,
    a: Analysis,
    caller: Mapping[str, Any],
    summarizer: Summarizer | None,
    scope: str,
    key: str | None,
) -> None:
    """Condense ``a``'s conversation as a WARNING turn would (reusing what earlier turns cached) and
    attach the verified result to the conversation's memo; never raises. Private, as background
    work is, so that a server's shutdown cancels it (:mod:`shutdown`)."""
    try:
        original = a.conversation.messages
        room = a.budget.limit - (a.count.total - sum(a.count.messages))  # less the system prompt and tools
        reg = fitting_regions(original, engine.settings, a.count.messages, room)
        req = Request(
            a.conversation,
            a.count,
            a.target.model,
            a.budget.limit,
            ContextRiskLevel.CRITICAL,
            scope,
            caller,
            time.perf_counter(),
            engine.settings.condensation_timeout,
        )
        condensed = await engine.condenser.reuse(req, reg, summarizer)  # condensed on an earlier turn?
        if condensed is None:
            target = target_tokens(a.budget.limit, engine.settings)
            condensed = await engine.condenser.condense(req, reg, target, summarizer)
            if condensed is None:
                return
            engine.stats.bump("speculative_condensations")
        # Prepare the WARNING turn: the verified prefix it will send, for the conversation's memo.
        pinned = [i for i in range(len(original)) if reg.pinned(i)]
        work = Work(condensed.messages, pinned, condensed.actions, summary={"summaries": condensed.details})
        if key is not None and engine._acceptable(a, work):
            conv = a.conversation
            managed = engine._managed(a, work, engine._render(a, work))
            if managed is not None:
                engine._turns.attach(key, conv.body.get(MESSAGES_KEY[conv.format]) or [], managed)
    except Exception as exc:  # the exception's message may quote the conversation: at DEBUG only
        log_fault(log, "speculative condensation failed (the request was not affected)", exc)
