"""The output reservation: an oversized max_tokens is lowered, only as far as needed, before messages change."""

from __future__ import annotations

from typing import Any

import pytest
from support import settings

from litellm_ctx_hook.analysis.limits import budget_for
from litellm_ctx_hook.analysis.risk import ContextRiskLevel, classify
from litellm_ctx_hook.conversation import Format
from litellm_ctx_hook.planning.output import THINKING_MIN_BUDGET, output_cap, with_cap

WINDOW = 72_000
S = settings()


def test_a_request_below_warning_under_its_own_reservation_keeps_it() -> None:
    body = {"max_tokens": 32_000}
    assert output_cap(body, Format.ANTHROPIC, WINDOW, 31_000, S) is None  # 77.5% of 40k: CAUTION


def test_the_reservation_gives_way_only_as_far_as_the_request_needs() -> None:
    body = {"max_tokens": 32_000}
    cap = output_cap(body, Format.ANTHROPIC, WINDOW, 43_000, S)
    assert cap is not None and cap.requested == 32_000 and cap.change == f"32000->{cap.granted}"
    assert classify(43_000, budget_for(WINDOW, cap.granted).limit, S).rank < ContextRiskLevel.WARNING.rank
    # one token more of output would put it at WARNING again
    assert classify(43_000, budget_for(WINDOW, cap.granted + 1).limit, S) is ContextRiskLevel.WARNING
    assert with_cap(body, cap) == {"max_tokens": cap.granted} and body == {"max_tokens": 32_000}


def test_never_below_the_floor_and_never_raised() -> None:
    cap = output_cap({"max_tokens": 32_000}, Format.ANTHROPIC, WINDOW, 70_000, S)
    assert cap is not None and cap.granted == S.output_tokens_floor
    assert output_cap({"max_tokens": S.output_tokens_floor}, Format.ANTHROPIC, WINDOW, 70_000, S) is None
    assert output_cap({"max_tokens": 2_000}, Format.ANTHROPIC, WINDOW, 70_000, S) is None
    assert output_cap({}, Format.ANTHROPIC, WINDOW, 70_000, S) is None  # nothing reserved: nothing to lower
    off = settings(output_tokens_floor=0)
    assert output_cap({"max_tokens": 32_000}, Format.ANTHROPIC, WINDOW, 70_000, off) is None


@pytest.mark.parametrize(
    ("fmt", "body", "keys"),
    [
        (Format.OPENAI, {"max_tokens": 30_000}, ("max_tokens",)),
        (
            Format.OPENAI,
            {"max_completion_tokens": 30_000, "max_tokens": 20_000},
            ("max_completion_tokens", "max_tokens"),
        ),
        (Format.RESPONSES, {"max_output_tokens": 30_000}, ("max_output_tokens",)),
        (Format.ANTHROPIC, {"max_tokens": 30_000}, ("max_tokens",)),
    ],
)
def test_the_key_the_route_uses_is_lowered(fmt: Format, body: dict[str, Any], keys: tuple[str, ...]) -> None:
    cap = output_cap(body, fmt, WINDOW, 60_000, S)
    assert cap is not None and cap.keys == keys and cap.requested == 30_000
    out = with_cap(body, cap)
    assert all(out[k] == min(body[k], cap.granted) for k in keys)  # a smaller second key is not raised


def test_an_extended_thinking_budget_stays_below_the_lowered_max_tokens() -> None:
    body = {"max_tokens": 32_000, "thinking": {"type": "enabled", "budget_tokens": 31_999}}
    cap = output_cap(body, Format.ANTHROPIC, WINDOW, 70_000, S)
    assert cap is not None and cap.thinking == (31_999, cap.granted - 1)
    out = with_cap(body, cap)
    assert out["thinking"] == {"type": "enabled", "budget_tokens": cap.granted - 1}
    assert body["thinking"]["budget_tokens"] == 31_999  # the client's body is not changed
    # a floor below the API's minimum budget still leaves a valid budget
    low = output_cap(body, Format.ANTHROPIC, WINDOW, 70_000, settings(output_tokens_floor=100))
    assert low is not None and low.granted > THINKING_MIN_BUDGET and low.thinking == (31_999, low.granted - 1)
    adaptive = {"max_tokens": 32_000, "thinking": {"type": "adaptive"}}
    cap = output_cap(adaptive, Format.ANTHROPIC, WINDOW, 70_000, S)
    assert cap is not None and cap.thinking is None and with_cap(adaptive, cap)["thinking"] == {"type": "adaptive"}
