"""Management in whole steps: the clearing level of a request, and the one rule for sending a prefix again."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st
from support import settings

from litellm_ctx_hook.conversation import Message, Part, PartKind, Role
from litellm_ctx_hook.planning.steps import (
    CLEARED,
    SUMMARIES,
    Step,
    clear_level,
    clearing,
    keeps,
    prefix_changed,
    previous_turn_tokens,
    step_bound,
    step_tokens,
    warning_tokens,
)

S = settings()
limits = st.integers(min_value=1_000, max_value=400_000)


@given(limits, st.floats(min_value=0.8, max_value=3.0))
def test_clearing_a_level_lands_between_the_target_and_warning(limit: int, share: float) -> None:
    tokens = int(share * limit)
    level = clear_level(tokens, limit, S)
    assert level >= 1
    after = tokens - clearing(tokens, limit, S)[1]
    assert after < warning_tokens(limit, S)  # below WARNING until the next step line ...
    assert after >= warning_tokens(limit, S) - step_tokens(limit, S)  # ... and never below the target


@given(limits, st.integers(min_value=0, max_value=10))
def test_a_request_on_a_step_line_falls_to_the_target(limit: int, steps: int) -> None:
    tokens = warning_tokens(limit, S) + steps * step_tokens(limit, S)
    after = tokens - clearing(tokens, limit, S)[1]
    assert after == warning_tokens(limit, S) - step_tokens(limit, S)
    assert abs(after - int(S.condensation_target_ratio * limit)) <= 1


@given(limits, st.integers(min_value=0, max_value=1_000_000), st.integers(min_value=0, max_value=1_000_000))
def test_the_level_only_grows_with_the_request(limit: int, a: int, b: int) -> None:
    low, high = sorted((a, b))
    assert clear_level(low, limit, S) <= clear_level(high, limit, S)
    assert clear_level(low, limit, S) == 0 or low >= warning_tokens(limit, S)


@given(limits, st.lists(st.integers(min_value=0, max_value=5_000), min_size=1, max_size=200))
def test_level_changes_over_a_growing_session_stay_within_the_bound(limit: int, growths: list[int]) -> None:
    tokens = warning_tokens(limit, S)
    levels = [clear_level(tokens, limit, S)]
    for g in growths:
        tokens += g
        levels.append(clear_level(tokens, limit, S))
    changes = sum(a != b for a, b in itertools.pairwise(levels))
    assert changes <= step_bound(sum(growths), limit, S)


def test_keeps_is_one_rule_for_summaries_and_clearing() -> None:
    limit = 10_000
    warning = warning_tokens(limit, S)
    # Summaries: sent again while the request stays below WARNING.
    assert keeps(Step(SUMMARIES), 9_500, warning - 1, limit, S)
    assert not keeps(Step(SUMMARIES), 9_500, warning, limit, S)
    # Clearing: sent again only at the level it was made for.
    level = clear_level(8_500, limit, S)
    assert keeps(Step(CLEARED, level), 8_500, 6_500, limit, S)
    assert keeps(Step(CLEARED, level), 9_900, 7_900, limit, S) is (clear_level(9_900, limit, S) == level)
    assert not keeps(Step(CLEARED, level), 8_500 + step_tokens(limit, S), 6_500, limit, S)
    # Never a prefix that makes the request larger.
    assert not keeps(Step(SUMMARIES), 5_000, 5_001, limit, S)


def _m(role: Role) -> Message:
    return Message(role, (Part(PartKind.TEXT, "x"),))


def test_the_previous_turn_is_the_request_before_its_last_reply() -> None:
    messages = [_m(Role.USER), _m(Role.ASSISTANT), _m(Role.USER), _m(Role.ASSISTANT), _m(Role.USER)]
    assert previous_turn_tokens(messages, [10, 20, 30, 40, 50], 160) == 160 - 90
    assert previous_turn_tokens(messages[:1], [10], 15) == 15


def test_prefix_changed_by_a_new_step_only() -> None:
    limit = 10_000
    warning = warning_tokens(limit, S)
    level = clear_level(warning + 10, limit, S)
    assert prefix_changed(Step(CLEARED, level), warning - 1, limit, S)  # the first managed turn
    assert not prefix_changed(Step(CLEARED, level), warning + 5, limit, S)  # same level as before
    assert prefix_changed(Step(CLEARED, level + 1), warning + 5, limit, S)  # a new level
    assert not prefix_changed(Step(SUMMARIES), warning + 5, limit, S)  # cached summaries as they were
    assert prefix_changed(None, warning + 5, limit, S)  # a new summary


def test_step_bound_is_the_issue_formula() -> None:
    assert step_bound(0, 64_000, S) == 1
    assert step_bound(12_800, 64_000, S) == 2
    assert step_bound(12_801, 64_000, S) == 3


def test_without_steps_clearing_aims_at_the_target() -> None:
    flat = settings(condensation_target_ratio=1.0)  # the target is not below WARNING: no steps
    limit = 10_000
    assert step_tokens(limit, flat) == 0
    level, savings = clearing(12_000, limit, flat)
    assert savings == 2_000  # down to the target itself
    assert keeps(Step(CLEARED, level), 12_000, 10_000, limit, flat)
    assert not keeps(Step(CLEARED, level), 12_001, 10_000, limit, flat)  # any other request: anew
