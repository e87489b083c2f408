"""The context engine: count → analyse → plan → execute → verify, for one request.

An oversized ``max_tokens`` gives way first (:mod:`planning.output`). Then the cheapest action
first, stopping once the request is below ``CONDENSATION_TARGET_RATIO`` of its limit: clear old
tool output, thinking and images (in whole steps, :mod:`steps`); condense a span (light) or the
whole middle (aggressive) with the summariser or the local extractive condenser; drop the oldest
unpinned atoms. When the pinned messages alone are above the target, the first of those that is
below WARNING, else that fits the limit, is sent (:meth:`ContextEngine._fit`); only when none
fits is the middle of a pinned message cut, the newest turn last. Every result is recounted and
verified before it is returned; one that fails goes to the next fallback and is never sent.
A managed prefix is sent again while :func:`steps.keeps` says so, whether found anew (cached
summaries) or remembered from the conversation's last turn (:mod:`turns`: only the new messages
are parsed); analysis and its caches live in :mod:`analysis`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING, Any

from ..adapters import MESSAGES_KEY, adapter_for
from ..adapters.anthropic_messages import fit_breakpoints
from ..analysis.analyzer import Analysis, Analyzer
from ..analysis.counting import RequestCount, TokenCounter
from ..analysis.limits import Budget, ModelTarget, RouterLike
from ..analysis.risk import (
    ContextAnalysisResult,
    ContextManagementStrategy,
    ContextRiskLevel,
    condensation_goal,
    target_tokens,
    warning_tokens,
)
from ..cache.keys import scope_for
from ..condensing.condensation import Condenser, Request, method_name
from ..condensing.local.extractive import condense_summary
from ..condensing.summarizer import LiteLLMSummarizer, Summarizer
from ..conversation import Format, Message
from ..errors import ContextHookError, ContextWindowExceededError
from ..planning import actions
from ..planning.output import OutputCap, capped_budget, output_cap, with_cap
from ..planning.plan import Regions, fitting_regions, regions
from ..planning.steps import (
    CLEARED,
    SUMMARIES,
    Step,
    clearing,
    keeps,
    prefix_changed,
    previous_turn_tokens,
)
from ..planning.tiers import Work, clear_all, clear_old, drop_old, strategy_of, truncate
from ..planning.verify import problems, verification_error
from ..runtime.offloop import INLINE_CHARS, QUEUE_SHARE, OffLoop, larger_than, on_worker
from ..runtime.stats import EngineStats
from ..settings import ManagementMode, Settings
from .speculation import Speculation
from .turns import Managed, TurnMemo, managed_from, memo_key, prefix_length

if TYPE_CHECKING:
    from ..cache.store import SummaryCache

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """A managed request: the body to send and what was done to it."""

    body: Mapping[str, Any]  # the input body object itself when nothing changed
    changed: bool
    tokens_before: int
    tokens_after: int
    risk: ContextRiskLevel
    strategy: ContextManagementStrategy
    cache: str  # hit | miss | none
    metadata: dict[str, Any] = field(default_factory=dict)
    prefix_changed: bool = False  # the request starts differently from its previous turn (a cache rewrite)


class ContextEngine:
    """One per process (the hook and the library API each hold one)."""

    def __init__(
        self,
        settings: Settings,
        *,
        summarizer: Summarizer | None = None,
        counter: TokenCounter | None = None,
        cache: SummaryCache | None = None,
        executor: OffLoop | None = None,
    ) -> None:
        self.settings = settings
        self.executor = executor  # where long requests and condensation run (else on the caller's loop)
        self._queue_s = QUEUE_SHARE * settings.processing_budget_s  # longest wait for the executor
        self.counter = counter or TokenCounter(settings)
        self.cache = cache
        if summarizer is None and settings.summarizer_enabled and settings.condensation_model:
            summarizer = LiteLLMSummarizer(settings.condensation_model, settings=settings)
        self.summarizer = summarizer
        self.stats = EngineStats()
        self.condenser = Condenser(settings, self.counter, self.stats, cache)
        self.speculation = Speculation(settings, self.condenser, self.stats, executor, self._queue_s)
        self.analyzer = Analyzer(settings, self.counter, self.stats)
        self.analyze = self.analyzer.analyze  # count and classify a request (changes nothing)
        self.resolve = self.analyzer.resolve  # the model's deployment and window
        self._turns = TurnMemo(settings.context_cache_size, float(settings.context_analysis_cache_ttl))

    def clear_caches(self) -> None:
        """Forget every in-process count, analysis, summary and statistic (Redis is left alone)."""
        self.counter.clear()
        self.analyzer.clear()
        self._turns.clear()
        self.condenser.clear()
        if self.cache is not None:
            self.cache.clear_local()
        self.stats.reset()

    @property
    def analysis_cache_size(self) -> int:
        return len(self.analyzer)

    @property
    def turn_memo(self) -> TurnMemo:
        """The conversations' last turns (:mod:`turns`), for sizes and footprints."""
        return self._turns

    def scope_for(self, team_id: str | None, api_key: str | None) -> str:
        """The tenant scope of cached summaries for a caller (``CONTEXT_CACHE_SCOPE``)."""
        return scope_for(self.settings.context_cache_scope, team_id, api_key)

    # -- management --------------------------------------------------------------------------
    async def manage(
        self,
        body: Mapping[str, Any],
        fmt: Format,
        model: str,
        *,
        router: RouterLike | None = None,
        limit: int | None = None,
        window: int | None = None,
        is_vision: bool = False,
        image_descriptions: Mapping[int, str] | None = None,
        caller_metadata: Mapping[str, Any] | None = None,
        summarizer: Summarizer | None = None,
        scope: str = "global",
        observe_only: bool = False,
    ) -> Outcome:
        """Return a body that fits the model's window (or raise :class:`ContextWindowExceededError`).

        ``limit`` is the caller's own limit (never changed); ``window`` the window of the deployment
        that serves the request (LiteLLM chose it), managed like a window the router names: its
        output reservation is the request's and may be lowered. ``summarizer`` overrides the
        engine's for this request (a per-model summariser); ``scope`` is the tenant scope of cached
        summaries; ``observe_only`` analyses and plans but changes nothing (as
        ``CONTEXT_MANAGEMENT_MODE=observe`` does for every request).
        """
        started = time.perf_counter()
        summarizer = summarizer or self.summarizer
        observe = observe_only or self.settings.context_management_mode is ManagementMode.OBSERVE
        key: str | None = None
        if image_descriptions is None:
            recalled, key = self._recalled(
                body, fmt, model, router, limit, window, is_vision, scope, summarizer, observe, started
            )
            if recalled is not None:
                return recalled
        if self.executor is not None and not on_worker() and larger_than(_messages(body, fmt), INLINE_CHARS):
            again: dict[str, Any] = dict(router=router, limit=limit, window=window, is_vision=is_vision)
            again.update(summarizer=summarizer)
            again.update(caller_metadata=caller_metadata, scope=scope, observe_only=observe_only)
            again.update(image_descriptions=image_descriptions)
            return await self.executor.run(partial(self.manage, body, fmt, model, **again), started + self._queue_s)
        a = await self.analyzer.analyze_async(
            body,
            fmt,
            model,
            router=router,
            limit=limit,
            window=window,
            is_vision=is_vision,
            image_descriptions=image_descriptions,
        )
        cap, budget = self._output(body, fmt, a.target, a.budget, a.count, limit)
        if cap is not None:
            a = replace(a, budget=budget, result=self._result(a, budget, started))
        risk = a.result.risk_level
        meta: dict[str, Any] = dict(a.result.metadata)
        meta.update(risk_level=risk.value, tokens_before=a.count.total, limit=a.budget.limit)
        speculate = self._speculates(risk) and not a.target.disabled
        if speculate:
            self._speculate(a, caller_metadata or {}, summarizer, scope, key)
        if risk.rank < ContextRiskLevel.WARNING.rank or a.target.disabled:
            self._remember(key, a, speculated=speculate)
            reason = "disabled for this model" if a.target.disabled else None
            return self._unchanged(body, a.count.total, risk, meta, started, reason, cap=cap, observe=observe)

        caller = caller_metadata or {}
        act = partial(self._act, body, a, meta, key, started, caller, summarizer, scope, observe, cap)
        return await (act() if self.executor is None else self.executor.run(act, started + self._queue_s))

    async def _act(
        self,
        body: Mapping[str, Any],
        a: Analysis,
        meta: dict[str, Any],
        key: str | None,
        started: float,
        caller: Mapping[str, Any],
        summarizer: Summarizer | None,
        scope: str,
        observe: bool,
        cap: OutputCap | None = None,
    ) -> Outcome:
        """Manage a request at WARNING or above (on the worker thread when there is one)."""
        risk = a.result.risk_level
        work = await self._execute(a, caller, started, summarizer, scope)
        if not work.actions:
            self._remember(key, a)
            reason = "nothing to condense: the request is kept as it is"
            return self._unchanged(body, a.count.total, risk, meta, started, reason, cap=cap, observe=observe)
        after = self._tokens(a, work)
        if work.cut:
            meta["cut"] = sorted(work.cut)
        messages = (len(a.conversation.messages), len(work.messages))
        if observe:
            strategy = self._report(meta, work.actions, after, messages, work.summary, None)
            self._remember(key, a)
            meta["observe_only"] = True
            return self._unchanged(body, a.count.total, risk, meta, started, None, strategy, cap, observe=True)
        strategy = self._report(meta, work.actions, after, messages, work.summary, cap)
        previous = previous_turn_tokens(a.conversation.messages, a.count.messages, a.count.total)
        changed = prefix_changed(work.step, previous, a.budget.limit, self.settings)
        rendered = self._render(a, work)
        self._remember(key, a, work, rendered)
        return self._sent(rendered, a.count.total, after, risk, strategy, work.cache, meta, started, changed, cap)

    def _report(
        self,
        meta: dict[str, Any],
        done: Sequence[str],
        after: int,
        messages: tuple[int, int],
        summary: Mapping[str, Any] | None,
        cap: OutputCap | None,
    ) -> ContextManagementStrategy:
        """Write what was done to a managed request into its report; the strategy it amounts to."""
        strategy = strategy_of(done)
        meta.update(
            actions=[cap.action, *done] if cap is not None else list(done),
            tokens_after=after,
            strategy=strategy.value,
            messages_before=messages[0],
            messages_after=messages[1],
        )
        if summary is not None:
            meta["summary"] = summary
        return strategy

    def _sent(
        self,
        body: Mapping[str, Any],
        tokens: int,
        after: int,
        risk: ContextRiskLevel,
        strategy: ContextManagementStrategy,
        cache: str,
        meta: dict[str, Any],
        started: float,
        changed: bool,
        cap: OutputCap | None,
    ) -> Outcome:
        """A managed request as it is sent (its output reservation lowered when ``cap`` says so),
        timed and counted in the statistics: the full analysis's and the turn memo's alike."""
        elapsed = (time.perf_counter() - started) * 1000
        meta.update(processing_ms=round(elapsed, 2), prefix_changed=changed)
        if cap is not None:
            meta["max_tokens"] = cap.change
        self.stats.record(risk.value, strategy.value, tokens - after, elapsed)
        return Outcome(with_cap(body, cap), True, tokens, after, risk, strategy, cache, meta, changed)

    def _speculates(self, risk: ContextRiskLevel) -> bool:
        """Whether a request at ``risk`` prepares its WARNING turn's summary in the background."""
        return risk is ContextRiskLevel.CAUTION and self.settings.context_speculative_condensation

    def _speculate(
        self, a: Analysis, caller: Mapping[str, Any], summarizer: Summarizer | None, scope: str, key: str | None
    ) -> None:
        """Start the summary the WARNING turn of ``a``'s conversation will need (:mod:`speculation`),
        condensed as that turn would, with the summariser's full timeout."""
        request = partial(
            self._request, a, scope, caller, ContextRiskLevel.CRITICAL, self.settings.condensation_timeout
        )
        target = target_tokens(a.budget.limit, self.settings)
        ready = partial(self._speculated, a, key) if key is not None else None
        self.speculation.start(request, self._span_regions(a), target, summarizer, ready)

    def _speculated(self, a: Analysis, key: str, work: Work) -> None:
        """A speculative result, verified, becomes the managed prefix of the conversation's last turn."""
        if self._acceptable(a, work):
            conv = a.conversation
            managed = self._managed(a, work, self._render(a, work))
            if managed is not None:
                self._turns.attach(key, conv.body.get(MESSAGES_KEY[conv.format]) or [], managed)

    def _request(
        self,
        a: Analysis,
        scope: str,
        caller: Mapping[str, Any],
        risk: ContextRiskLevel,
        budget_s: float,
        started: float | None = None,
    ) -> Request:
        """What condensation needs to know of ``a``, timed from ``started`` (else now)."""
        started = time.perf_counter() if started is None else started
        return Request(a.conversation, a.count, a.target.model, a.budget.limit, risk, scope, caller, started, budget_s)

    def _span_regions(self, a: Analysis, reg: Regions | None = None) -> Regions:
        """The regions condensing and truncation use: the pinned tail shortened when the pinned
        messages alone do not fit the room the system prompt and tools leave (``reg``: the
        default regions, when the caller has them)."""
        fixed = a.count.total - sum(a.count.messages)
        return fitting_regions(a.conversation.messages, self.settings, a.count.messages, a.budget.limit - fixed, reg)

    # -- the conversation's last turn --------------------------------------------------------
    def _recalled(
        self,
        body: Mapping[str, Any],
        fmt: Format,
        model: str,
        router: RouterLike | None,
        limit: int | None,
        window: int | None,
        is_vision: bool,
        scope: str,
        summarizer: Summarizer | None,
        observe: bool,
        started: float,
    ) -> tuple[Outcome | None, str | None]:
        """The request handled from its conversation's last turn (:mod:`turns`): passed through
        below WARNING, or given the remembered managed prefix above; ``None`` (and the memo key,
        if the request has one): analyse it in full."""
        if not isinstance(body, Mapping) or not isinstance(raws := body.get(MESSAGES_KEY[fmt]), list):
            return None, None
        try:
            target = self.analyzer.target(model, router, limit, is_vision, window)
            if target.disabled:
                return None, None
            budget = self.analyzer.budget(body, fmt, target, limit)
            key = memo_key(fmt, raws, target.model, budget.limit, scope, is_vision, method_name(summarizer))
            recalled = self._turns.recall(key, body, fmt, target.model, self.counter) if key else None
        except ContextHookError:
            return None, None  # the full analysis says what is wrong
        if recalled is None:
            return None, key
        count = recalled.count
        cap, budget = self._output(body, fmt, target, budget, count, limit)
        result = self.analyzer.result(fmt, len(raws), target, budget, count, started)
        risk = result.risk_level
        meta: dict[str, Any] = dict(result.metadata)
        meta.update(risk_level=risk.value, tokens_before=count.total, limit=budget.limit)
        if risk.rank < ContextRiskLevel.WARNING.rank:
            if self._speculates(risk) and not recalled.turn.speculated:
                return None, key  # the full analysis starts the speculative summary
            self._turns.advance(recalled)
            self.stats.bump("turn_memo_hits")
            return self._unchanged(body, count.total, risk, meta, started, None, cap=cap, observe=observe), key
        managed = recalled.turn.managed
        continued = None if observe or managed is None else recalled.managed_messages()
        if managed is None or continued is None:
            return None, key
        messages, counts = continued
        after = self.counter.assemble(target.model, counts, recalled.turn.system, recalled.turn.tools).total
        if not keeps(managed.step, count.total, after, budget.limit, self.settings):
            return None, key  # the full analysis makes the next step
        summary = {"summaries": [dict(d) for d in managed.summaries]} if managed.summaries else None
        strategy = self._report(meta, managed.actions, after, (len(raws), len(messages)), summary, cap)
        self._turns.advance(recalled)
        self.stats.bump("turn_memo_hits")
        cache = "hit" if managed.summaries else "none"
        out = fit_breakpoints({**body, MESSAGES_KEY[fmt]: messages}, len(managed.prefix) - 1, fmt)
        return self._sent(out, count.total, after, risk, strategy, cache, meta, started, False, cap), key

    def _remember(
        self,
        key: str | None,
        a: Analysis,
        work: Work | None = None,
        rendered: Mapping[str, Any] | None = None,
        *,
        speculated: bool = False,
    ) -> None:
        """Remember a fully analysed request as its conversation's last turn, with its managed
        prefix if it has one (:meth:`_managed`)."""
        if key is not None:
            managed = self._managed(a, work, rendered) if work is not None and rendered is not None else None
            conv = a.conversation
            self._turns.remember(key, conv, conv.format, a.count.messages, managed, speculated=speculated)

    def _managed(self, a: Analysis, work: Work, rendered: Mapping[str, Any]) -> Managed | None:
        """The prefix the next turns can send again: a result of summaries (reused on those turns)
        or of cleared old output, followed by untouched messages; ``None`` for anything else."""
        kinds = actions.kinds(work.actions)
        if work.summary is not None and any(d.get("provisional") for d in work.summary["summaries"]):
            return None  # the model's summary replaces it once ready: look it up on the next turn
        if work.summary is not None and kinds <= actions.SUMMARY_ACTIONS:
            summaries = tuple({**d, "cache": "hit"} for d in work.summary["summaries"])
            done = tuple(actions.reuse(d["messages_condensed"]) for d in summaries)
            step = Step(SUMMARIES)
        elif kinds == {"clear"} and len(work.actions) == 1 and work.step is not None:
            summaries, done, step = (), tuple(work.actions), work.step
        else:
            return None
        conv = a.conversation
        raws = rendered.get(MESSAGES_KEY[conv.format])
        if not isinstance(raws, list):
            return None
        counts = self._measure(a, work).messages
        return managed_from(conv.messages, work.messages, raws, counts, done, summaries, step)

    def _render(self, a: Analysis, work: Work) -> Mapping[str, Any]:
        """The request body of a result; on ``/v1/messages``, with a prompt-cache breakpoint at the
        end of its managed prefix when the client uses them (:func:`fit_breakpoints`)."""
        conv = a.conversation
        rendered = adapter_for(conv.format).render(conv.with_messages(work.messages))
        return fit_breakpoints(rendered, prefix_length(conv.messages, work.messages) - 1, conv.format)

    def _unchanged(
        self,
        body: Mapping[str, Any],
        tokens: int,
        risk: ContextRiskLevel,
        meta: dict[str, Any],
        started: float,
        reason: str | None,
        planned: ContextManagementStrategy | None = None,
        cap: OutputCap | None = None,
        *,
        observe: bool = False,
    ) -> Outcome:
        """The request's messages as the client sent them; its output reservation lowered when
        ``cap`` says so (reported only, with ``observe``)."""
        elapsed = (time.perf_counter() - started) * 1000
        meta.setdefault("tokens_after", tokens)
        meta["processing_ms"] = round(elapsed, 2)
        if reason:
            meta["skipped"] = reason
        if planned is not None:
            meta["planned_strategy"] = planned.value
        self.stats.record(risk.value, ContextManagementStrategy.MONITOR_ONLY.value, 0, elapsed)
        monitor = ContextManagementStrategy.MONITOR_ONLY
        if cap is None:
            return Outcome(body, False, tokens, tokens, risk, monitor, "none", meta)
        if observe:
            meta["planned_max_tokens"] = cap.change
            return Outcome(body, False, tokens, tokens, risk, monitor, "none", meta)
        meta["max_tokens"] = cap.change
        meta.setdefault("actions", [cap.action])
        return Outcome(with_cap(body, cap), True, tokens, tokens, risk, monitor, "none", meta)

    def _output(
        self,
        body: Mapping[str, Any],
        fmt: Format,
        target: ModelTarget,
        budget: Budget,
        count: RequestCount,
        limit: int | None,
    ) -> tuple[OutputCap | None, Budget]:
        """The request's output reservation and budget: the client's, or lowered when it alone
        would put the request at WARNING or above (:mod:`planning.output`; logged once per request
        that lowers it). A limit the caller gives is its own: never changed."""
        if limit is not None or target.disabled:
            return None, budget
        cap = output_cap(body, fmt, target.window, count.total, self.settings)
        if cap is None:
            return None, budget
        log.info(
            "max_tokens %s: the reserved output left too little of the %d-token window for %d input tokens",
            cap.change,
            target.window,
            count.total,
        )
        return cap, capped_budget(target.window, cap)

    def _result(self, a: Analysis, budget: Budget, started: float) -> ContextAnalysisResult:
        conv = a.conversation
        return self.analyzer.result(conv.format, len(conv.messages), a.target, budget, a.count, started)

    async def _execute(
        self, a: Analysis, caller: Mapping[str, Any], started: float, summarizer: Summarizer | None, scope: str
    ) -> Work:
        conv = a.conversation
        original = list(conv.messages)
        target = target_tokens(a.budget.limit, self.settings)
        # Clearing never reaches into the recent turns; condensing does when they alone are too large
        # for the room the system prompt and tools leave.
        reg = regions(original, self.settings)
        fixed = a.count.total - sum(a.count.messages)
        span_reg = self._span_regions(a, reg)
        pinned = [i for i in range(len(original)) if span_reg.pinned(i)]
        req = self._request(a, scope, caller, a.result.risk_level, self.settings.processing_budget_s, started)

        # Cached summaries of this conversation's prefix: while they keep the request below WARNING,
        # send exactly what the previous turns sent (no model call, stable prefix).
        reused = await self.condenser.reuse(req, span_reg, summarizer)
        if reused is not None:
            summary = {"summaries": reused.details}
            work = Work(reused.messages, pinned, reused.actions, cache="hit", summary=summary, step=Step(SUMMARIES))
            if self._keeps(a, work) and self._acceptable(a, work):
                return work
        else:
            # Tier 1: clear old tool output / thinking / images: enough for the request's level (steps).
            level, savings = clearing(a.count.total, a.budget.limit, self.settings)
            cleared = clear_old(original, reg, savings, self._counter_of(a), self._text_counter_of(a))
            if cleared is not None:
                work = Work(cleared[0], pinned, [actions.clear(cleared[1])], step=Step(CLEARED, level))
                if self._keeps(a, work) and self._acceptable(a, work):
                    return work

        # Tier 2: condense a span of the middle (light) or all of it (aggressive).
        # Aimed at the target (condensation_goal: higher when the pinned messages leave no room below
        # it); short of it, sent as it is while the following turns would send it
        # again (below WARNING: truncating now would only bring the dropped turns back next turn).
        work = Work(list(original), pinned)
        floor = fixed + sum(a.count.messages[i] for i in pinned)
        goal = condensation_goal(floor, a.budget.limit, self.settings)
        condensed = await self.condenser.condense(req, span_reg, goal, summarizer)
        condensed_work: Work | None = None
        if condensed is not None:
            summary = {"summaries": condensed.details}
            # Summaries all found in the cache are those an earlier turn sent (for the prefix flag).
            step = Step(SUMMARIES) if condensed.cache == "hit" else None
            work = Work(
                condensed.messages, pinned, condensed.actions, cache=condensed.cache, summary=summary, step=step
            )
            after = self._tokens(a, work)
            again = keeps(Step(SUMMARIES), a.count.total, after, a.budget.limit, self.settings)
            # Pinned messages just below the target leave a summary no room: it aims below WARNING.
            reached = after <= (goal if floor <= target else target)
            if (reached or again) and self._acceptable(a, work):
                return work
            condensed_work = work

        # The pinned messages alone are above the target: the cheaper tiers' best that fits.
        if floor > target:
            fitted, smallest = self._fit(a, original, span_reg, pinned, condensed_work, target)
            if smallest is not None and condensed_work is None:
                # nothing fits: pinned messages are cut from the condensed history (it keeps the
                # gist of the turns it replaced), else from the smallest result with atoms dropped
                work = smallest
            if fitted is not None:
                log.info(
                    "target of %d tokens out of reach (the pinned messages need %d): sent %s at %d of %d tokens",
                    target,
                    floor,
                    ",".join(fitted.actions),
                    self._tokens(a, fitted),
                    a.budget.limit,
                )
                return fitted

        # Tier 3: drop the oldest unpinned atoms, then cut the middle of a pinned message.
        acted = len(work.actions)
        count_text = self._text_counter_of(a)
        truncate(
            a.conversation.format,
            original,
            work,
            target,
            a.budget.limit,
            self._measure_of(a),
            count_text,
            lambda summary, budget: condense_summary(summary, budget, count_text),
        )
        if len(work.actions) > acted:
            work.step = None
        if self._acceptable(a, work):
            if work.cut:
                log.warning(
                    "pinned messages %s cut to fit: nothing else brought the request within %d tokens",
                    sorted(work.cut),
                    a.budget.limit,
                )
            return work
        if a.count.total <= a.budget.limit:
            return Work(list(original), pinned)  # no valid improvement: the request fits as it is
        after = self._tokens(a, work)
        if after > a.budget.limit:
            raise ContextWindowExceededError(
                f"request needs {after} tokens after condensation and truncation but model {a.target.alias!r} "
                f"allows {a.budget.limit} ({a.target.window} window - {a.budget.reserved_output} reserved for "
                "output): shorten the pinned messages (system prompt, first and last turns) or lower max_tokens",
                tokens=after,
                limit=a.budget.limit,
                model=a.target.alias,
            )
        raise verification_error(a.conversation.format, original, self._problems(a, work))

    def _fit(
        self,
        a: Analysis,
        original: list[Message],
        reg: Regions,
        pinned: list[int],
        condensed: Work | None,
        target: int,
    ) -> tuple[Work | None, Work | None]:
        """When the target is out of reach without touching a pinned message: the first of all old
        tool output cleared and all history condensed that is below WARNING, else the first of them
        that fits the limit; only when neither fits, the old atoms dropped (after condensing, then
        without), below WARNING first. ``None`` when nothing fits: pinned messages must be cut; and
        the smallest of the results with old atoms dropped. Dropping comes last because it loses
        what the agent saw, where clearing keeps the lines that differ and a summary their gist."""
        warning = warning_tokens(a.budget.limit, self.settings)
        dropped: list[Work] = []

        def drop(base: Work | None) -> Work | None:
            work = self._dropped(a, original, pinned, base, target)
            if work is not None:
                dropped.append(work)
            return work

        keeping: tuple[Callable[[], Work | None], ...] = (
            lambda: self._cleared_all(a, original, reg, pinned),
            lambda: condensed,
        )
        losing: tuple[Callable[[], Work | None], ...] = (
            lambda: drop(condensed) if condensed is not None else None,
            lambda: drop(None),
        )
        for group in (keeping, losing):
            fitting: Work | None = None
            for make in group:
                work = make()
                if work is None or not self._acceptable(a, work):
                    continue
                if self._tokens(a, work) < warning:
                    return work, None
                fitting = fitting or work
            if fitting is not None:
                return fitting, None
        smallest = min(dropped, key=lambda w: self._tokens(a, w), default=None)
        return None, smallest

    def _cleared_all(self, a: Analysis, original: list[Message], reg: Regions, pinned: list[int]) -> Work | None:
        cleared = clear_all(original, reg, self._text_counter_of(a))
        return Work(cleared[0], pinned, [actions.clear(cleared[1])]) if cleared is not None else None

    def _dropped(
        self, a: Analysis, original: list[Message], pinned: list[int], base: Work | None, target: int
    ) -> Work | None:
        work = Work(list(base.messages if base else original), pinned, list(base.actions if base else []))
        if base is not None:
            work.cache, work.summary = base.cache, base.summary
        acted = len(work.actions)
        drop_old(a.conversation.format, original, work, target, self._measure_of(a))
        return work if len(work.actions) > acted else None

    # -- background work --------------------------------------------------------------------
    async def drain(self) -> None:
        """Wait for background work (speculative summaries, model summaries) to finish; for tests
        and shutdown."""
        await self.speculation.drain()
        if self.executor is not None:
            await self.executor.drain()
            await self.executor.run(self.condenser.drain, None)
        await self.condenser.drain()

    # -- verification ------------------------------------------------------------------------
    def _counter_of(self, a: Analysis) -> Callable[[Sequence[Message]], int]:
        return lambda messages: self.counter.count(a.conversation.with_messages(messages), a.target.model).total

    def _measure_of(self, a: Analysis) -> Callable[[Sequence[Message]], RequestCount]:
        return lambda messages: self.counter.count(a.conversation.with_messages(messages), a.target.model)

    def _text_counter_of(self, a: Analysis) -> Callable[[str], int]:
        return lambda text: self.counter.count_text(text, a.count.family)

    def _measure(self, a: Analysis, work: Work) -> RequestCount:
        """The count of ``work.messages``, counted once however often it is asked for (the same
        message objects in the same order; holding them keeps their identities unique)."""
        last = work.counted
        if (
            last is None
            or len(last[0]) != len(work.messages)
            or any(x is not y for x, y in zip(last[0], work.messages, strict=True))
        ):
            count = self.counter.count(a.conversation.with_messages(work.messages), a.target.model)
            last = work.counted = (tuple(work.messages), count)
        return last[1]

    def _tokens(self, a: Analysis, work: Work) -> int:
        return self._measure(a, work).total

    def _problems(self, a: Analysis, work: Work) -> list[str]:
        conv = a.conversation
        return problems(
            conv.format,
            conv.messages,
            work.messages,
            work.pinned,
            tokens_before=a.count.total,
            tokens_after=self._tokens(a, work),
            limit=a.budget.limit,
            cut=frozenset(work.cut),
        )

    def _keeps(self, a: Analysis, work: Work) -> bool:
        step, after = work.step, self._tokens(a, work)
        return step is not None and keeps(step, a.count.total, after, a.budget.limit, self.settings)

    def _acceptable(self, a: Analysis, work: Work) -> bool:
        found = self._problems(a, work)
        if found:
            log.info("discarding a candidate result: %s", "; ".join(found[:3]))
        return not found


def _messages(body: object, fmt: Format) -> object:
    return body.get(MESSAGES_KEY[fmt]) if isinstance(body, Mapping) else None
