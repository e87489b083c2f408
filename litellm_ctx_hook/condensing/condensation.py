"""Condensation (tier 2) with incremental reuse of cached summaries.

The middle of a conversation is condensed run by run (a run is a stretch of unpinned atoms; the
last user turn and earlier summaries split them). A summary is cached under the chained digest of
every atom up to the end of its span, salted with the run's start, the strategy, the summariser
model and the prompt version. On the next turn:

1. *reuse* — the longest cached prefix of each run replaces its span as it is; while the request
   stays below the WARNING threshold nothing else is done, so the condensed prefix is
   byte-identical from turn to turn (provider prompt caches keep hitting) and no model is called;
2. *extend* — past WARNING the span grows, and only the atoms beyond the cached prefix are
   condensed, by extending the cached summary ("update this summary with …").

A growing conversation therefore pays for a summary about once per (WARNING − target) of growth.
Summaries are made under a single-flight lock, so replicas given the same conversation make one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from ..analysis.counting import OFF_LOOP_CHARS, RequestCount, TokenCounter
from ..analysis.risk import ContextRiskLevel
from ..cache.entries import SummaryEntry
from ..cache.keys import chain_digests, chain_salt, content_digest
from ..cache.memory import MemoryLRU
from ..conversation import Conversation, Message, Part, PartKind, Role
from ..planning.actions import reuse as reuse_action
from ..planning.atoms import Atom
from ..planning.edits import replace_spans, summary_text
from ..planning.plan import CHAT_RECENT_MESSAGES, Regions, aggressive_span, light_span
from ..runtime.logs import log_fault
from ..runtime.offloop import in_thread_if
from ..runtime.stats import EngineStats
from ..settings import CondensationStrategyName, Settings
from .local.extractive import SUMMARY_SPEAKER, Segment, condense, segments_of
from .summarizer import PROMPT_VERSION, Summarizer
from .summary_writer import SUMMARY_MIN_TOKENS, ModelWriter

if TYPE_CHECKING:
    from ..cache.store import SummaryCache

log = logging.getLogger(__name__)

FRAME_MARGIN_TOKENS = 2  # the summary joined to its wrapper may tokenise a little differently
EXTRACTIVE_RESERVE_S = 1.0  # of a request's time budget, kept for the extractive fallback …
EXTRACTIVE_RESERVE_SHARE = 0.25  # … or this share of the budget when that is less
MODEL_MIN_SPAN_TOKENS = 1000  # smaller spans are condensed extractively: a model call is not worth it
EXTENDED = "+extractive"  # a model's summary extended by the extractive condenser: "summarizer:x+extractive"
MODEL_KEEP_ROOM = 0.25  # a model's summary is extended as it is while this share of the budget is left


@dataclass(frozen=True)
class Request:
    """What condensation needs to know about the request being managed."""

    conversation: Conversation
    count: RequestCount
    model: str  # deployment model (tokenizer)
    limit: int
    risk: ContextRiskLevel
    scope: str
    caller: Mapping[str, Any]
    started: float
    budget_s: float  # time this request may spend (MAX_CONTEXT_PROCESSING_TIME, longer when speculative)

    @property
    def remaining_s(self) -> float:
        return self.budget_s - (time.perf_counter() - self.started)


@dataclass
class Condensed:
    messages: list[Message]
    actions: list[str] = field(default_factory=list)
    details: list[dict[str, Any]] = field(default_factory=list)
    cache: str = "miss"  # hit: every summary came from the cache


class Condenser:
    def __init__(
        self, settings: Settings, counter: TokenCounter, stats: EngineStats, cache: SummaryCache | None = None
    ) -> None:
        self.settings = settings
        self.counter = counter
        self.stats = stats
        self.cache = cache
        self.writer = ModelWriter(settings, counter, stats)
        self._local: MemoryLRU[SummaryEntry] = MemoryLRU(settings.context_cache_size)
        self._atom_digests: MemoryLRU[bytes] = MemoryLRU(max(1000, settings.tiktoken_cache_size))
        self._background: dict[str, asyncio.Task[SummaryEntry | None]] = {}  # model summaries under way

    def clear(self) -> None:
        """Forget the summaries, digests and model pace kept in process (background work goes on)."""
        self._local.clear()
        self._atom_digests.clear()
        self.writer.pace.clear()

    def sizes(self) -> dict[str, int]:
        """Entries held in process: ``summaries_local`` (summaries kept without the shared cache),
        ``atom_digests`` (digests of condensed spans), ``background_summaries`` (model summaries
        under way) and ``summariser_paces`` (models whose summariser pace is tracked)."""
        return {
            "summaries_local": len(self._local),
            "atom_digests": len(self._atom_digests),
            "background_summaries": len(self._background),
            "summariser_paces": len(self.writer.pace),
        }

    # -- digests -------------------------------------------------------------------------------
    def _atom_payloads(self, conv: Conversation, atoms: Sequence[Atom]) -> list[bytes]:
        """A content digest per atom (cached per message content within the process)."""
        out = []
        for atom in atoms:
            key = str(hash(tuple(conv.messages[i].signature for i in atom.indices)))
            digest = self._atom_digests.get(key)
            if digest is None:
                digest = content_digest(conv.messages[i] for i in atom.indices)
                self._atom_digests.put(key, digest, float(self.settings.condensation_cache_ttl))
            out.append(digest)
        return out

    def _digests(self, req: Request, reg: Regions, run: Sequence[Atom], method: str) -> list[str]:
        """Chained digests of the atoms up to each atom of ``run`` (same length as ``run``)."""
        upto = reg.atoms.index(run[-1]) + 1
        salt = chain_salt(
            self.settings.condensation_default_strategy.value,
            method,
            f"{PROMPT_VERSION}|{req.conversation.format.value}|start={run[0].start}",
        )
        chain = chain_digests(self._atom_payloads(req.conversation, reg.atoms[:upto]), salt)
        first = reg.atoms.index(run[0])
        return chain[first:upto]

    async def _lookup(self, req: Request, digests: Sequence[str]) -> tuple[int, SummaryEntry] | None:
        """The longest cached prefix, if its summary suits the request's room (SummaryEntry.suits)."""
        if self.cache is not None:
            hit = await self.cache.longest_prefix(req.scope, digests)
        else:
            found = ((k, self._local.get(f"{req.scope}:{digests[k]}")) for k in range(len(digests) - 1, -1, -1))
            hit = next(((k, e) for k, e in found if e is not None), None)
        return hit if hit is not None and hit[1].suits(req.limit) else None

    async def _store(self, req: Request, digest: str, entry: SummaryEntry) -> None:
        if self.cache is not None:
            await self.cache.put(req.scope, digest, entry)
        else:
            self._local.put(f"{req.scope}:{digest}", entry, float(self.settings.condensation_cache_ttl))

    # -- reuse -----------------------------------------------------------------------------------
    async def reuse(self, req: Request, reg: Regions, summarizer: Summarizer | None) -> Condensed | None:
        """The request with each run's longest cached prefix replaced by its summary (no model call)."""
        method = method_name(summarizer)
        replacements, details = [], []
        for run in reg.runs:
            hit = await self._lookup(req, self._digests(req, reg, run, method))
            if hit is None:
                continue
            k, entry = hit
            first, last = run[0].start, run[k].end
            replacements.append((first, last, summary_text(entry.summary, last - first)))
            details.append(_detail(first, last, entry, "hit"))
        if not replacements:
            return None
        messages, insertions = replace_spans(req.conversation.format, req.conversation.messages, replacements)
        for d, ins in zip(details, insertions, strict=True):
            d.update(index=ins.index, role=ins.role, merged=ins.merged)
        actions = [reuse_action(d["messages_condensed"]) for d in details]
        return Condensed(messages, actions, details, "hit")

    # -- planning ------------------------------------------------------------------------------
    def spans(self, req: Request, reg: Regions, target_tokens: int) -> list[tuple[int, int, str]]:
        """Message spans to condense: the oldest span that is enough (light), else every run of the
        middle, keeping the most recent atoms of the last run verbatim (aggressive)."""
        per = req.count.messages
        runs = reg.runs
        if not runs:
            return []

        def tokens(atoms: Sequence[Atom]) -> list[int]:
            return [sum(per[i] for i in at.indices) for at in atoms]

        middle_total = sum(sum(tokens(r)) for r in runs)
        if req.risk is ContextRiskLevel.WARNING:
            excess = req.count.total - target_tokens
            span = light_span(runs[0], tokens(runs[0]), excess, SUMMARY_MIN_TOKENS, self.settings)
            if span is not None:
                return [(runs[0][span[0]].start, runs[0][span[1] - 1].end, "light")]
        # Aggressive: of what the target leaves for the middle, at least MIN_PRESERVATION_RATIO goes
        # to the condensed history; recent atoms of the last run stay verbatim in the rest (in a
        # plain chat, at most CHAT_RECENT_MESSAGES of them).
        room = max(0, target_tokens - (req.count.total - middle_total))
        keep = int(room * (1 - self.settings.min_preservation_ratio))
        out = []
        for k, run in enumerate(runs):
            last = k == len(runs) - 1
            chat = last and not any(at.has_tools for at in run)
            span = aggressive_span(
                run, tokens(run), keep if last else 0, self.settings, CHAT_RECENT_MESSAGES if chat else None
            )
            if span is not None:
                out.append((run[span[0]].start, run[span[1] - 1].end, "aggressive"))
        return out

    def _budgets(self, req: Request, spans: Sequence[tuple[int, int, str]], target_tokens: int) -> list[int]:
        """Tokens each summary may use: the room the target leaves, shared in proportion to span size,
        never more than half of a span (a summary must shrink it)."""
        sizes = [sum(req.count.messages[first:last]) for first, last, _ in spans]
        frames = sum(self._frame_tokens(req, last - first) for first, last, _ in spans)
        room = target_tokens - (req.count.total - sum(sizes)) - frames
        total = max(1, sum(sizes))
        return [max(SUMMARY_MIN_TOKENS, min(size // 2, room * size // total)) for size in sizes]

    def _frame_tokens(self, req: Request, messages_condensed: int) -> int:
        """What a summary message costs besides its summary: the wrapper and the message framing."""
        frame = Message(Role.USER, (Part(PartKind.TEXT, summary_text("", messages_condensed)),))
        return self.counter.count_message(frame, req.count.family) + FRAME_MARGIN_TOKENS

    # -- condensing ----------------------------------------------------------------------------
    async def condense(
        self, req: Request, reg: Regions, target_tokens: int, summarizer: Summarizer | None
    ) -> Condensed | None:
        """Condense the planned spans, extending cached summaries where a prefix is cached."""
        spans = self.spans(req, reg, target_tokens)
        if not spans:
            return None
        method = method_name(summarizer)
        messages = req.conversation.messages
        replacements, details, actions = [], [], []
        all_hits = True
        for (first, last, tier), budget in zip(spans, self._budgets(req, spans, target_tokens), strict=True):
            run = next(r for r in reg.runs if r[0].start <= first < r[-1].end)
            end_atom = next(k for k, at in enumerate(run) if at.end == last)
            digests = self._digests(req, reg, run, method)
            hit = await self._lookup(req, digests)
            if hit is not None and hit[0] >= end_atom:
                k, entry = hit  # a longer cached span than planned: use it as it is
                last = run[k].end
                how = "hit"
            else:
                all_hits = False
                made = await self._make(req, run, hit, end_atom, digests[: end_atom + 1], budget, summarizer)
                if made is None:
                    self.stats.bump("condensation_failures")
                    continue
                entry, how = made
            replacements.append((run[0].start, last, summary_text(entry.summary, last - run[0].start)))
            verb = "condense" if hit is None else "extend"  # extend: a cached prefix was found and grown
            actions.append(f"{verb}:{tier}:{'hit' if how == 'hit' else entry.model}:{last - run[0].start}")
            details.append(_detail(run[0].start, last, entry, how))
            self.stats.bump("condensations")
        if not replacements:
            return None
        out, insertions = replace_spans(req.conversation.format, messages, replacements)
        for d, ins in zip(details, insertions, strict=True):
            d.update(index=ins.index, role=ins.role, merged=ins.merged)
        return Condensed(out, actions, details, "hit" if all_hits else "miss")

    async def _make(
        self,
        req: Request,
        run: Sequence[Atom],
        hit: tuple[int, SummaryEntry] | None,
        end_atom: int,
        digests: Sequence[str],
        budget: int,
        summarizer: Summarizer | None,
    ) -> tuple[SummaryEntry, str] | None:
        """A new summary of ``run[0..end_atom]`` (``digests``: the chain up to it), extending the
        cached prefix when there is one, and how it was had: ``computed``, ``waited`` (another
        caller made it) or ``hit``."""
        messages = req.conversation.messages
        start_atom = hit[0] + 1 if hit is not None else 0
        previous = hit[1].summary if hit is not None else None
        span = list(messages[run[start_atom].start : run[end_atom].end])
        digest = digests[end_atom]
        job = _Job(req.scope, digest, span, previous, end_atom + 1, hit[1].model if hit is not None else None)
        new_tokens = sum(req.count.messages[run[start_atom].start : run[end_atom].end])
        if self._uses_model(summarizer) and new_tokens >= MODEL_MIN_SPAN_TOKENS:
            assert summarizer is not None
            if any(self._pending(f"{req.scope}:{d}") for d in digests[:end_atom]):
                # The model is summarising a shorter prefix of this run: its summary, extended once
                # it lands, serves the next turns; a second call for this longer span would not.
                self.stats.bump("fallbacks")
                made = await self._extractive_entry(req, job, budget, provisional=True)
                return (made, "computed") if made is not None else None
            entry = await self._model_summary(req, job, budget, summarizer)
            if entry is not None:
                return entry, "computed"
            self.stats.bump("fallbacks")
            made = await self._extractive_entry(req, job, budget, provisional=self._pending(job.key))
            if made is None:
                return None
            await self._store_unless_final(req.scope, digest, made)
            return made, "computed"

        async def compute() -> SummaryEntry | None:
            return await self._extractive_entry(req, job, budget, provisional=False)

        remaining = max(0.05, req.remaining_s)
        if self.cache is not None:
            entry, how = await self.cache.single_flight(req.scope, digest, compute, remaining)
        else:
            entry, how = await compute(), "computed"
            if entry is not None:
                await self._store(req, digest, entry)
        return (entry, how) if entry is not None else None

    def _uses_model(self, summarizer: Summarizer | None) -> bool:
        return (
            summarizer is not None
            and self.settings.condensation_default_strategy is not CondensationStrategyName.EXTRACTIVE
        )

    def _entry(self, req: Request, job: _Job, text: str, how: str, *, provisional: bool = False) -> SummaryEntry:
        return SummaryEntry(
            summary=text,
            atoms_covered=job.atoms_covered,
            strategy=self.settings.condensation_default_strategy.value,
            model=how,
            prompt_version=PROMPT_VERSION,
            tokens=self.counter.count_text(text, req.count.family),
            created_at=time.time(),
            provisional=provisional,
            room=req.limit,
        )

    async def _extractive_entry(
        self, req: Request, job: _Job, budget: int, *, provisional: bool
    ) -> SummaryEntry | None:
        """The extractive condenser's summary of the job's span, extending ``job.previous``: a
        model's summary is kept as it is, with the condensed new turns after it, while it leaves
        them ``MODEL_KEEP_ROOM`` of the budget (its prefix stays byte-identical, and what the model
        wrote is not cut into lines); an extractive one is condensed again with them."""
        family = req.count.family

        def count(text: str) -> int:
            return self.counter.count_text(text, family)

        previous, how = job.previous, "extractive"
        if previous and job.previous_method and job.previous_method.startswith("summarizer:"):
            room = budget - count(previous) - 1
            if room >= MODEL_KEEP_ROOM * budget:
                added = await self._condense(segments_of(job.span), room, count)
                text = f"{previous}\n{added}" if added.strip() else previous
                if count(text) <= budget:
                    how = job.previous_method.removesuffix(EXTENDED) + EXTENDED
                    return self._entry(req, job, text, how, provisional=provisional)
        segments = segments_of(job.span)
        if previous:
            segments = [Segment(SUMMARY_SPEAKER, previous), *segments]
        text = await self._condense(segments, budget, count)
        return self._entry(req, job, text, how, provisional=provisional) if text.strip() else None

    @staticmethod
    async def _condense(segments: Sequence[Segment], budget: int, count: Callable[[str], int]) -> str:
        heavy = sum(len(seg.text) for seg in segments) > OFF_LOOP_CHARS  # keep the proxy's loop free
        return await in_thread_if(heavy, condense, segments, budget, count)

    async def _store_unless_final(self, scope: str, digest: str, entry: SummaryEntry) -> None:
        """Store a fallback summary, unless the model's own summary landed in the meantime."""
        if self.cache is not None:
            found = await self.cache.get(scope, digest)
            if found is None or found.provisional:
                await self.cache.put(scope, digest, entry)
            return
        found = self._local.get(f"{scope}:{digest}")
        if found is None or found.provisional:
            self._local.put(f"{scope}:{digest}", entry, float(self.settings.condensation_cache_ttl))

    # -- the summariser model -------------------------------------------------------------------
    def _pending(self, key: str) -> bool:
        """Whether this process is making the model's summary of ``key`` in the background."""
        task = self._background.get(key)
        return task is not None and not task.done()

    async def _model_summary(self, req: Request, job: _Job, budget: int, summarizer: Summarizer) -> SummaryEntry | None:
        """The model's summary if it is ready within the request's time budget (less the time the
        extractive fallback needs); else ``None`` while it goes on in the background (bounded,
        single-flight across replicas), to be verified, cached and used by the following turns.
        A model whose recent pace says it cannot finish in that time is not waited for at all."""
        task = self._background.get(job.key)
        if task is None:
            if len(self._background) >= max(1, 2 * self.settings.condensation_parallel_requests):
                self.stats.bump("background_skipped")
                return None
            task = asyncio.get_running_loop().create_task(self._model_flight(req, job, budget, summarizer))
            self._background[job.key] = task
            task.add_done_callback(partial(self._finished, job.key))
        reserve = min(EXTRACTIVE_RESERVE_S, EXTRACTIVE_RESERVE_SHARE * req.budget_s)
        wait = req.remaining_s - reserve
        pace = self.writer.pace.get(summarizer.model)  # a model known to be slower than the wait: no wait
        span_tokens = sum(self.counter.count_message(m, req.count.family) for m in job.span)
        if wait > 0 and not task.done():
            if pace is None or pace * span_tokens <= wait:
                await asyncio.wait({task}, timeout=wait)  # never cancels the task
            else:
                self.stats.bump("model_waits_skipped")
        if not task.done():
            self.stats.bump("summaries_in_background")
            return None
        return task.result() if not task.cancelled() else None

    def _finished(self, key: str, task: asyncio.Task[SummaryEntry | None]) -> None:
        self._background.pop(key, None)

    async def _model_flight(self, req: Request, job: _Job, budget: int, summarizer: Summarizer) -> SummaryEntry | None:
        """Make (or wait for another replica to make) the model's summary, within CONDENSATION_TIMEOUT."""
        timeout = self.settings.condensation_timeout

        async def compute() -> SummaryEntry | None:
            return await self._model_entry(req, job, budget, summarizer, time.perf_counter() + timeout)

        try:
            if self.cache is not None:
                entry, how = await self.cache.single_flight(
                    job.scope, job.digest, compute, timeout, accept=lambda e: not e.provisional
                )
            else:
                try:
                    async with asyncio.timeout(timeout):
                        entry, how = await compute(), "computed"
                except TimeoutError:
                    entry, how = None, "timeout"
                if entry is not None:
                    self._local.put(job.key, entry, float(self.settings.condensation_cache_ttl))
            if how == "timeout":
                self.stats.bump("summarizer_failures")
                log.warning("summariser %r: no summary within CONDENSATION_TIMEOUT (%.0fs)", summarizer.model, timeout)
            return entry
        except Exception as exc:  # the exception's message may quote the conversation: at DEBUG only
            log_fault(log, f"background summary of span {job.digest[:12]} failed", exc)
            return None

    async def _model_entry(
        self, req: Request, job: _Job, budget: int, summarizer: Summarizer, deadline: float
    ) -> SummaryEntry | None:
        text = await self.writer.write(
            job.span, budget, summarizer, req.count.family, previous=job.previous, caller=req.caller, deadline=deadline
        )
        return self._entry(req, job, text, f"summarizer:{summarizer.model}") if text is not None else None

    async def drain(self) -> None:
        """Wait for the summaries being made in the background (tests, shutdown)."""
        while self._background:
            await asyncio.gather(*list(self._background.values()), return_exceptions=True)


@dataclass(frozen=True)
class _Job:
    """One summary to make: the span of messages (after ``previous``, the cached summary it extends)."""

    scope: str
    digest: str
    span: list[Message]
    previous: str | None
    atoms_covered: int
    previous_method: str | None = None  # how ``previous`` was made (SummaryEntry.model)

    @property
    def key(self) -> str:
        return f"{self.scope}:{self.digest}"


def _detail(first: int, last: int, entry: SummaryEntry, how: str) -> dict[str, Any]:
    """What the request's report says of one summary (``provisional``: the extractive condenser's,
    used until the model's summary is ready)."""
    detail: dict[str, Any] = {"span": [first, last], "messages_condensed": last - first, "method": entry.model}
    if how == "hit":
        detail["cache"] = "hit"
    if entry.provisional:
        detail["provisional"] = True
    return detail


def method_name(summarizer: Summarizer | None) -> str:
    """How summaries are made: part of every summary-cache key."""
    return f"summarizer:{summarizer.model}" if summarizer is not None else "extractive"
