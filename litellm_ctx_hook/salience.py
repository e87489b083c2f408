"""Key tokens and line salience (pure): what a condensed text must not lose."""

from __future__ import annotations

import re

_KEY = re.compile(
    r"https?://[^\s\"'<>)\]]+"  # URLs
    r"|[\w.+-]+@[\w-]+\.[\w.]+"  # e-mail
    r"|(?:[A-Za-z]:)?(?:[\w.-]*/)+[\w.-]+"  # paths
    r"|\b\d[\d,]*(?:\.\d+)?\b"  # numbers
    r"|\b(?=\w*\d)(?=\w*[A-Za-z])\w{3,}\b"  # ids mixing letters and digits
    r"|\b[a-z]+(?:_[a-z0-9]+)+\b|\b[a-z]+(?:[A-Z][a-z0-9]+)+\b"  # snake_case, camelCase
)
_DECISION = re.compile(
    r"\b(decided|decision|will|must|should|fixed|error|failed|failure|exception|traceback|todo|confirmed|"
    r"cancel(?:led)?|booked|refund(?:ed)?|because|root cause)\b",
    re.IGNORECASE,
)


def key_tokens(text: str) -> frozenset[str]:
    return frozenset(m.group(0).rstrip(".,;:") for m in _KEY.finditer(text))


def line_score(line: str) -> float:
    stripped = line.strip()
    if len(stripped) < 3 or not any(c.isalnum() for c in stripped):
        return 0.0
    score = 1.0 + len(key_tokens(stripped)) * 1.5 + len(_DECISION.findall(stripped)) * 1.0
    if "?" in stripped:
        score += 1.0
    return score / (1.0 + len(stripped) / 400)


def fact_retention(source: str, condensed: str) -> float:
    keys = key_tokens(source)
    if not keys:
        return 1.0
    return sum(1 for k in keys if k in condensed) / len(keys)
