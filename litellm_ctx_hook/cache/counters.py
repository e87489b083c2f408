"""Process-local cache counters: hits and misses per tier, rejected entries, single-flight outcomes.

One :class:`CacheStats` belongs to one :class:`~litellm_ctx_hook.cache.store.SummaryCache`; nothing
here is module-level state. Counters carry names and numbers only, never cache contents.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

REJECT_REASONS = ("corrupt", "version", "forged", "unsigned")
TIERS = ("l1", "l2")
KINDS = ("summary", "analysis")
FLIGHT_OUTCOMES = ("hit", "computed", "waited", "timeout", "error")


@dataclass
class CacheStats:
    """Mutable counters of one cache instance (asyncio: updated from one event loop)."""

    hits: Counter[str] = field(default_factory=Counter)
    misses: Counter[str] = field(default_factory=Counter)
    rejected: Counter[str] = field(default_factory=Counter)
    flights: Counter[str] = field(default_factory=Counter)
    counters: Counter[str] = field(default_factory=Counter)

    def hit(self, kind: str, tier: str) -> None:
        self.hits[f"{kind}.{tier}"] += 1

    def miss(self, kind: str, tier: str) -> None:
        self.misses[f"{kind}.{tier}"] += 1

    def reject(self, reason: str) -> None:
        self.rejected[reason] += 1

    def flight(self, how: str) -> None:
        self.flights[how] += 1

    def count(self, name: str, amount: int = 1) -> None:
        self.counters[name] += amount

    def snapshot(self) -> dict[str, Any]:
        """Plain dicts with every known name present (zeros included) for stable dashboards."""
        return {
            "hits": {k: {t: self.hits[f"{k}.{t}"] for t in TIERS} for k in KINDS},
            "misses": {k: {t: self.misses[f"{k}.{t}"] for t in TIERS} for k in KINDS},
            "rejected": {r: self.rejected[r] for r in REJECT_REASONS},
            "single_flight": {h: self.flights[h] for h in FLIGHT_OUTCOMES},
            "counters": dict(self.counters),
        }

    def reset(self) -> None:
        for c in (self.hits, self.misses, self.rejected, self.flights, self.counters):
            c.clear()
