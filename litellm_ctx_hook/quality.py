"""The summary quality gate (pure, deterministic).

``score = 0`` for an empty answer, a refusal, or a summary not shorter than what it replaces;
otherwise ``min(1, 0.5 + retention)`` where ``retention`` is the share of the span's key tokens
(numbers, identifiers, paths, URLs, names — :func:`salience.key_tokens`) found in the summary.
With the default ``CONDENSATION_QUALITY_THRESHOLD=0.8`` a summary passes when it keeps at least
30% of the span's key tokens verbatim.
"""

from __future__ import annotations

import re

from .salience import fact_retention

_REFUSAL = re.compile(
    r"^\s*(I('m| am)? (sorry|unable|not able)|I can(no|')t|As an AI|I won't|I will not)",
    re.IGNORECASE,
)


def quality_score(span_text: str, summary: str, span_tokens: int, summary_tokens: int) -> float:
    if not summary.strip() or _REFUSAL.match(summary):
        return 0.0
    if summary_tokens >= span_tokens:
        return 0.0
    return min(1.0, 0.5 + fact_retention(span_text, summary))
