"""A deterministic stand-in for a summariser model (benchmarks, tests): counts its calls.

It keeps the identifier-like words of the transcript (those with digits, paths, snake_case), the
newest last, within ``max_tokens`` — enough to pass the quality gate, with no model involved.
"""

from __future__ import annotations

import asyncio

from ..condensing.summarizer import SummaryRequest


class KeywordSummarizer:
    model = "keyword-summarizer"

    def __init__(self, delay_s: float = 0.0) -> None:
        self.calls = 0
        self.delay_s = delay_s

    async def summarize(self, req: SummaryRequest, timeout: float) -> str:
        self.calls += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        previous = (req.previous_summary or "").split()
        keep = [w for w in req.transcript.split() if any(c.isdigit() or c in "/_" for c in w)]
        words = list(dict.fromkeys(previous + keep))
        return " ".join(words[-max(1, req.max_tokens // 4) :])
