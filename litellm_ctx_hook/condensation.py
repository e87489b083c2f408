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
import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .atoms import Atom
from .cache.entries import SummaryEntry
from .cache.keys import chain_digests, chain_salt
from .cache.memory import MemoryLRU
from .conversation import Conversation, Message, Part, PartKind, Role
from .counting import OFF_LOOP_CHARS, RequestCount, TokenCounter
from .edits import replace_spans, summary_text
from .extractive import Segment, condense, segments_of
from .plan import Regions, aggressive_span, light_span
from .quality import quality_score
from .risk import ContextRiskLevel
from .settings import CondensationStrategyName, Settings
from .stats import EngineStats
from .summarizer import PROMPT_VERSION, Summarizer, SummarizerError, SummaryRequest

if TYPE_CHECKING:
    from .cache.store import SummaryCache

log = logging.getLogger(__name__)

SUMMARY_MIN_TOKENS = 100
SUMMARY_MAX_TOKENS = 4000  # what a summariser model is asked to write at most
FRAME_MARGIN_TOKENS = 2  # the summary joined to its wrapper may tokenise a little differently


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


@dataclass(frozen=True)
class _Span:
    first_atom: int  # index into the run
    last_atom: int  # inclusive
    tier: str


class Condenser:
    def __init__(
        self, settings: Settings, counter: TokenCounter, stats: EngineStats, cache: SummaryCache | None = None
    ) -> None:
        self.settings = settings
        self.counter = counter
        self.stats = stats
        self.cache = cache
        self._gate = asyncio.Semaphore(settings.condensation_parallel_requests)
        self._local: MemoryLRU[SummaryEntry] = MemoryLRU(settings.context_cache_size)
        self._atom_digests: MemoryLRU[bytes] = MemoryLRU(max(1000, settings.tiktoken_cache_size))

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
        if self.cache is not None:
            return await self.cache.longest_prefix(req.scope, digests)
        for k in range(len(digests) - 1, -1, -1):
            entry = self._local.get(f"{req.scope}:{digests[k]}")
            if entry is not None:
                return k, entry
        return None

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
            details.append(
                {"span": [first, last], "messages_condensed": last - first, "method": entry.model, "cache": "hit"}
            )
        if not replacements:
            return None
        messages, insertions = replace_spans(req.conversation.format, req.conversation.messages, replacements)
        for d, ins in zip(details, insertions, strict=True):
            d.update(index=ins.index, role=ins.role, merged=ins.merged)
        actions = [f"reuse:{d['messages_condensed']}" for d in details]
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
        # to the condensed history; recent atoms of the last run stay verbatim in the rest.
        room = max(0, target_tokens - (req.count.total - middle_total))
        keep = int(room * (1 - self.settings.min_preservation_ratio))
        out = []
        for k, run in enumerate(runs):
            span = aggressive_span(run, tokens(run), keep if k == len(runs) - 1 else 0, self.settings)
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
                summary, how = entry.summary, "hit"
            else:
                all_hits = False
                made = await self._make(req, run, hit, end_atom, digests[end_atom], budget, summarizer)
                if made is None:
                    self.stats.bump("condensation_failures")
                    continue
                summary, how = made
            replacements.append((run[0].start, last, summary_text(summary, last - run[0].start)))
            verb = "condense" if hit is None else "extend"  # extend: a cached prefix was found and grown
            actions.append(f"{verb}:{tier}:{how}:{last - run[0].start}")
            details.append({"span": [run[0].start, last], "messages_condensed": last - run[0].start, "method": how})
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
        digest: str,
        budget: int,
        summarizer: Summarizer | None,
    ) -> tuple[str, str] | None:
        """A new summary of ``run[0..end_atom]``, extending the cached prefix when there is one."""
        messages = req.conversation.messages
        start_atom = hit[0] + 1 if hit is not None else 0
        previous = hit[1].summary if hit is not None else None
        new = list(messages[run[start_atom].start : run[end_atom].end])

        async def compute() -> SummaryEntry | None:
            made = await self._summarize(req, new, previous, budget, summarizer)
            if made is None:
                return None
            text, how = made
            family = req.count.family
            return SummaryEntry(
                summary=text,
                atoms_covered=end_atom + 1,
                strategy=self.settings.condensation_default_strategy.value,
                model=how,
                prompt_version=PROMPT_VERSION,
                tokens=self.counter.count_text(text, family),
                created_at=time.time(),
            )

        remaining = max(0.05, req.remaining_s)
        if self.cache is not None:
            entry, how = await self.cache.single_flight(req.scope, digest, compute, remaining)
        else:
            entry, how = await compute(), "computed"
            if entry is not None:
                await self._store(req, digest, entry)
        if entry is None:
            return None
        return entry.summary, entry.model if how != "hit" else "hit"

    async def _summarize(
        self,
        req: Request,
        span: Sequence[Message],
        previous: str | None,
        budget: int,
        summarizer: Summarizer | None,
    ) -> tuple[str, str] | None:
        """Summary text of a span (extending ``previous``) and how it was made."""
        family = req.count.family
        segments = segments_of(span)
        if (
            summarizer is not None
            and self.settings.condensation_default_strategy is not CondensationStrategyName.EXTRACTIVE
        ):
            transcript = "\n".join(f"[{s.speaker}] {s.text}" for s in segments)
            span_tokens = sum(self.counter.count_message(m, family) for m in span)
            if previous:
                span_tokens += self.counter.count_text(previous, family)
            text = await self._ai_summary(
                req, summarizer, transcript, previous, min(budget, SUMMARY_MAX_TOKENS), span_tokens
            )
            if text is not None:
                return _fit(
                    text, budget, lambda t: self.counter.count_text(t, family)
                ), f"summarizer:{summarizer.model}"
            self.stats.bump("fallbacks")
        if previous:
            segments = [Segment("summary of earlier turns", previous), *segments]
        count = self.counter.count_text
        if sum(len(seg.text) for seg in segments) > OFF_LOOP_CHARS:  # keep the event loop free
            text = await asyncio.to_thread(condense, segments, budget, lambda t: count(t, family))
        else:
            text = condense(segments, budget, lambda t: count(t, family))
        return (text, "extractive") if text.strip() else None

    async def _ai_summary(
        self,
        req: Request,
        summarizer: Summarizer,
        transcript: str,
        previous: str | None,
        budget: int,
        span_tokens: int,
    ) -> str | None:
        timeout = min(self.settings.condensation_timeout, req.remaining_s)
        if timeout <= 0.05:
            return None
        strategy = self.settings.condensation_default_strategy
        call = SummaryRequest(transcript, strategy, budget, previous_summary=previous, metadata=dict(req.caller))
        self.stats.bump("summarizer_calls")
        try:
            async with self._gate:
                text = await summarizer.summarize(call, timeout)
        except SummarizerError as exc:
            self.stats.bump("summarizer_failures")
            log.warning("summariser failed, using the extractive condenser: %s", exc)
            return None
        family = req.count.family
        source = f"{previous}\n{transcript}" if previous else transcript
        score = quality_score(source, text, span_tokens, self.counter.count_text(text, family))
        if score < self.settings.condensation_quality_threshold:
            self.stats.bump("summarizer_failures")
            log.warning("summary quality %.2f below threshold, using the extractive condenser", score)
            return None
        return text


def _fit(text: str, budget: int, count: Callable[[str], int]) -> str:
    """A summary longer than asked for, cut at a line boundary (models overshoot max_tokens in words)."""
    if count(text) <= budget:
        return text
    lines = text.splitlines()
    while len(lines) > 1 and count("\n".join(lines)) > budget:
        lines.pop()
    kept = "\n".join(lines)
    return kept if count(kept) <= budget else kept[: budget * 3]


def content_digest(messages: Iterable[Message]) -> bytes:
    """A digest of what a summary of ``messages`` depends on: roles, names and every part's kind,
    text, tool id and name and image reference. Stable across processes (cache keys are shared);
    length-prefixed fields, so no two different contents hash alike by concatenation."""
    h = hashlib.blake2b(digest_size=16)

    def put(value: str | None) -> None:
        data = b"\xff" if value is None else value.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)

    for m in messages:
        put(m.raw_role)
        put(m.name)
        for p in m.parts:
            put(p.kind.value)
            put(p.text)
            put(p.tool_id)
            put(p.tool_name)
            if p.image is not None:
                put(p.image.url or p.image.data)
                put(p.image.detail)
    return h.digest()


def method_name(summarizer: Summarizer | None) -> str:
    """How summaries are made: part of every summary-cache key."""
    return f"summarizer:{summarizer.model}" if summarizer is not None else "extractive"
