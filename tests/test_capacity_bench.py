"""The capacity benchmark's own arithmetic: histogram quantiles, the replay plan, the growth bound."""

from __future__ import annotations

import math

import pytest

from bench.capacity import Conversation, growth_bound, plan, quantile
from litellm_ctx_hook.testing.session import generate_session


def test_quantile_interpolates_within_the_bucket_as_promql_does() -> None:
    buckets = {0.1: 50.0, 0.5: 90.0, 1.0: 100.0, math.inf: 100.0}
    assert quantile(buckets, 0.5) == pytest.approx(0.1)
    assert quantile(buckets, 0.7) == pytest.approx(0.3)  # halfway between 50 and 90 within (0.1, 0.5]
    assert quantile(buckets, 0.99) == pytest.approx(0.95)
    assert quantile({math.inf: 0.0}, 0.99) is None


def test_the_plan_grows_each_conversation_and_hedges_its_first_warning_step() -> None:
    messages = generate_session(turns=30, seed=3)["messages"]
    [conv] = plan([messages], steps=5, limit=4000, warning=0.8)
    assert conv.steps[-1] == max(k for k, m in enumerate(conv.messages) if m["role"] == "assistant")
    assert conv.steps == sorted(set(conv.steps))
    assert conv.tokens == sorted(conv.tokens)  # growing
    assert conv.hedged is not None
    assert conv.tokens[conv.hedged] >= 3200
    assert all(t < 3200 for t in conv.tokens[: conv.hedged])
    assert all(m["content"].startswith("[conv-000] ") for m in conv.messages if m["role"] == "user")


def test_the_growth_bound_allows_one_summary_per_warning_to_target_of_growth() -> None:
    conv = Conversation(0, [], [1, 2, 3], [3000, 3300, 4300], hedged=1)
    assert growth_bound(conv, limit=4000, warning=0.8, target=0.6) == pytest.approx(1000 / 800 + 1)
    assert growth_bound(Conversation(1, [], [1], [100]), limit=4000, warning=0.8, target=0.6) is None
