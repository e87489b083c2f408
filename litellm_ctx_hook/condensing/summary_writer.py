"""The summariser model writing one summary (I/O edge): the span in pieces that fit the model's
own window, each piece extending the summary so far, then the quality gate (:mod:`quality`). Tool
output reaches the model collapsed by template (:func:`transcript_lines`).

The model's recent pace (seconds per span token) is remembered per model, so that a request can
skip waiting for a model known to be too slow (:mod:`condensation`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..analysis.counting import TokenCounter
from ..analysis.templates import collapse
from ..analysis.tokenizers import Family
from ..conversation import Message
from ..runtime.stats import EngineStats
from ..settings import CondensationStrategyName, Settings
from .local.extractive import segments_of
from .quality import clean, fit, mend_room, review, without_cut_line
from .summarizer import Summarizer, SummarizerError, SummaryRequest, prompt_overhead, summarizer_window

log = logging.getLogger(__name__)

SUMMARY_MIN_TOKENS = 100
SUMMARY_MAX_TOKENS = 4000  # what a summariser model is asked to write at most
WINDOW_SHARE = 0.8  # of the summariser's own window used per call (its tokenizer is not ours)
MIN_PIECE_TOKENS = 256  # a summariser whose window leaves less than this per piece is not used
PACE_WEIGHT = 0.3  # of the newest summary in a model's remembered pace


class ModelWriter:
    """Writes summaries with summariser models: at most CONDENSATION_PARALLEL_REQUESTS calls at once."""

    def __init__(self, settings: Settings, counter: TokenCounter, stats: EngineStats) -> None:
        self.settings = settings
        self.counter = counter
        self.stats = stats
        self.gate = asyncio.Semaphore(settings.condensation_parallel_requests)
        self.pace: dict[str, float] = {}  # per summariser model: recent seconds per span token (EWMA)

    async def write(
        self,
        span: Sequence[Message],
        budget: int,
        summarizer: Summarizer,
        family: Family,
        *,
        previous: str | None = None,
        caller: Mapping[str, Any] | None = None,
        deadline: float | None = None,
    ) -> str | None:
        """The model's summary of ``span`` (extending ``previous``) within ``budget`` tokens of
        ``family``: made in pieces when the span exceeds the summariser's own window, reviewed and
        mended by the quality gate; ``None`` when it failed (the caller falls back)."""
        if deadline is None:
            deadline = time.perf_counter() + self.settings.condensation_timeout
        lines = transcript_lines(span)
        ask = max(SUMMARY_MIN_TOKENS // 2, min(budget - mend_room(budget), SUMMARY_MAX_TOKENS))
        span_tokens = sum(self.counter.count_message(m, family) for m in span)
        if previous:
            span_tokens += self.counter.count_text(previous, family)

        def count(text: str) -> int:
            return self.counter.count_text(text, family)

        metadata = dict(caller or {})
        strategy = self.settings.condensation_default_strategy
        pieces = self._pieces(lines, previous, ask, summarizer, count, strategy)
        if pieces is None:
            self.stats.bump("summarizer_failures")
            log.warning("summariser %r: its window is too small for one piece of the span", summarizer.model)
            return None
        summary = previous
        started = time.perf_counter()
        for n, piece in enumerate(pieces):
            call = SummaryRequest("\n".join(piece), strategy, ask, previous_summary=summary, metadata=metadata)
            remaining = deadline - time.perf_counter()
            if remaining <= 0.05:
                self.stats.bump("summarizer_failures")
                return None
            self.stats.bump("summarizer_calls")
            try:
                async with self.gate:
                    text = await summarizer.summarize(call, deadline - time.perf_counter())
            except SummarizerError as exc:
                self.stats.bump("summarizer_failures")
                log.warning("summariser failed, using the extractive condenser: %s", exc)
                return None
            text = without_cut_line(text, ask, count)
            summary = text if n == len(pieces) - 1 else fit(clean(text), ask, count)
        assert summary is not None
        pace = (time.perf_counter() - started) / max(1, span_tokens)
        before = self.pace.get(summarizer.model)
        self.pace[summarizer.model] = pace if before is None else before + PACE_WEIGHT * (pace - before)
        source = "\n".join([previous, *lines] if previous else lines)
        verdict = review(
            source,
            summary,
            span_tokens=span_tokens,
            budget=budget,
            threshold=self.settings.condensation_quality_threshold,
            count=count,
        )
        if verdict.text is None:
            self.stats.bump("summarizer_failures")
            log.warning(
                "summary rejected (%s, score %.2f): using the extractive condenser", verdict.reason, verdict.score
            )
            return None
        if verdict.mended_facts:
            self.stats.bump("summaries_mended")
        return verdict.text

    def _pieces(
        self,
        lines: Sequence[str],
        previous: str | None,
        ask: int,
        summarizer: Summarizer,
        count: Callable[[str], int],
        strategy: CondensationStrategyName,
    ) -> list[list[str]] | None:
        """The transcript lines in pieces that each fit the summariser's own window with the prompt,
        the summary so far and the answer (one piece when the window is unknown or large enough);
        ``None`` when not even a small piece fits."""
        window = summarizer_window(summarizer)
        if window is None:
            return [list(lines)]
        overhead = count(prompt_overhead(SummaryRequest("", strategy, ask, previous_summary="x")))
        carried = max(ask, count(previous)) if previous else 0
        first_room = int(window * WINDOW_SHARE) - overhead - ask - carried
        room = int(window * WINDOW_SHARE) - overhead - ask - max(ask, carried)
        if min(first_room, room) < MIN_PIECE_TOKENS:
            return None
        pieces: list[list[str]] = [[]]
        used = 0
        for line in lines:
            for part in _split_line(line, room, count):
                n = count(part) + 1
                limit = first_room if len(pieces) == 1 else room
                if pieces[-1] and used + n > limit:
                    pieces.append([])
                    used = 0
                pieces[-1].append(part)
                used += n
        return pieces


def transcript_lines(span: Sequence[Message]) -> list[str]:
    """The span as the summariser reads it, one ``[speaker] text`` entry per segment: a tool
    result's repetitive lines collapsed to one line per template, its rare lines verbatim
    (:func:`templates.collapse`), so the model reads fewer tokens and sees the outliers."""
    out = []
    for seg in segments_of(span):
        text = collapse(seg.text) if seg.speaker.startswith("tool result") else seg.text
        out.append(f"[{seg.speaker}] {text}")
    return out


def _split_line(line: str, room: int, count: Callable[[str], int]) -> list[str]:
    """``line`` as it is if it fits ``room`` tokens, else cut into pieces that do."""
    if count(line) <= room:
        return [line]
    out = []
    rest = line
    while rest:
        part = fit(rest, room, count)
        if not part:
            part = rest[: max(1, room)]
        out.append(part)
        rest = rest[len(part) :]
    return out
