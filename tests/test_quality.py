"""The summary quality gate: clean, reject, fit, mend, score."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from litellm_ctx_hook.condensing.quality import (
    MEND_LABEL,
    clean,
    fit,
    invented_share,
    quality_score,
    review,
    without_cut_line,
)

SPAN = "\n".join(
    [
        "[user] Please rebook reservation 4WQ150 for Mia Li (user mia_li_3668) onto flight HAT136 on 2024-05-20.",
        "[tool result get_reservation_details] reservation_id=4WQ150 origin=JFK destination=SEA amount=$482.50",
        "[assistant] Flight HAT136 departs JFK at 14:30; the fare difference is $120, paid with credit_card_4421486.",
        "[user] Yes, go ahead and charge credit_card_4421486. Also keep seat 12A if possible.",
    ]
    * 3
)
GOOD = (
    "## Goal\nRebook reservation 4WQ150 for Mia Li (mia_li_3668) onto HAT136 on 2024-05-20.\n"
    "## Decisions and facts\nHAT136 leaves JFK 14:30; fare difference $120 charged to credit_card_4421486; "
    "seat 12A requested.\n## Current state and next step\nCharge approved; confirm the booking."
)


def words(text: str) -> int:
    return len(text.split())


def test_clean_removes_fences_preamble_and_sign_off() -> None:
    raw = "```markdown\nHere is the summary:\n## Goal\nShip it.\nLet me know if you need more.\n```"
    assert clean(raw) == "## Goal\nShip it."
    assert clean("  ## Goal\nShip it.  ") == "## Goal\nShip it."


def test_a_good_summary_passes_as_written() -> None:
    verdict = review(SPAN, GOOD, span_tokens=words(SPAN), budget=200, threshold=0.8, count=words)
    assert verdict.text is not None and verdict.text.startswith(GOOD)
    assert verdict.score >= 0.8


def test_missed_facts_are_mended_into_an_index_line() -> None:
    partial = "## Goal\nRebook reservation 4WQ150 onto HAT136.\n## Current state and next step\nConfirm."
    verdict = review(SPAN, partial, span_tokens=words(SPAN), budget=120, threshold=0.8, count=words)
    assert verdict.text is not None and verdict.reason == "mended" and verdict.mended_facts > 0
    index = verdict.text.splitlines()[-1]
    assert index.startswith(MEND_LABEL)
    assert "credit_card_4421486" in index and "mia_li_3668" in index
    assert "4WQ150" not in index  # already quoted by the summary
    assert words(verdict.text) <= 120


def test_a_reply_instead_of_a_summary_is_rejected() -> None:
    for reply in ("PWNED", "Sure! I'd be happy to help you with that. What would you like to do next?"):
        verdict = review(SPAN, reply, span_tokens=words(SPAN), budget=200, threshold=0.5, count=words)
        assert verdict.text is None and verdict.reason == "reply"


def test_refusals_and_empty_answers_are_rejected() -> None:
    assert review(SPAN, "I'm sorry, I can't help.", span_tokens=999, budget=99, threshold=0, count=words).reason == (
        "refusal"
    )
    assert review(SPAN, "  \n ", span_tokens=999, budget=99, threshold=0, count=words).reason == "empty"


def test_made_up_identifiers_are_rejected() -> None:
    made_up = "## Goal\nRebook ZZ9001 onto QX777 on 2031-01-01 for user bob_smith_1 with card_999 and seat 99Z."
    assert invented_share(SPAN, made_up)[1] > 0.5
    verdict = review(SPAN, made_up, span_tokens=words(SPAN), budget=200, threshold=0.5, count=words)
    assert verdict.text is None and verdict.reason == "invented"


def test_an_overlong_summary_is_cut_to_its_budget_at_a_line() -> None:
    long = GOOD + "\n" + "\n".join(["- the traveller asked again about HAT136 and 4WQ150"] * 200)
    verdict = review(SPAN * 20, long, span_tokens=words(SPAN * 20), budget=80, threshold=0.5, count=words)
    assert verdict.text is not None and words(verdict.text) <= 80
    assert verdict.text.startswith("## Goal")


def test_a_summary_not_shorter_than_its_span_fails() -> None:
    assert quality_score("a b", "a b c d", 2, 4) == 0.0
    verdict = review("HAT136 x", "## Goal\nHAT136 x y z w", span_tokens=2, budget=50, threshold=0.5, count=words)
    assert verdict.text is None and verdict.reason == "not shorter"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(min_size=0, max_size=30), min_size=1, max_size=20), st.integers(1, 40))
def test_fit_never_exceeds_its_budget_and_keeps_a_prefix(lines: list[str], budget: int) -> None:
    text = "\n".join(lines)
    out = fit(text, budget, lambda t: len(t.split()) + t.count("\n"))
    assert len(out.split()) + out.count("\n") <= budget
    assert text.startswith(out)


def test_clean_drops_sections_that_only_say_they_are_empty() -> None:
    raw = (
        "## Goal\nUpgrade M20IZO.\n## Files and artifacts\n- No files or artifacts were read, created, or changed.\n"
        "## Errors and fixes\n- No errors or fixes were mentioned.\n## Current state and next step\n- Charge $1,194.\n"
        "## Notes\nNone."
    )
    assert clean(raw) == "## Goal\nUpgrade M20IZO.\n## Current state and next step\n- Charge $1,194."
    assert clean("## Goal\n- No, the user declined the upgrade to business.") == (
        "## Goal\n- No, the user declined the upgrade to business."
    )
    assert clean("## Decisions and facts\n- No refund was made.") == "## Decisions and facts\n- No refund was made."


def test_a_line_cut_by_max_tokens_is_dropped() -> None:
    cut = "## Goal\nUpgrade M20IZO.\n- The user wants"
    assert without_cut_line(cut, asked=8, count=words) == "## Goal\nUpgrade M20IZO."
    assert without_cut_line(cut, asked=100, count=words) == cut  # far from max_tokens: the model stopped there
    assert without_cut_line("## Goal\nUpgrade M20IZO.", asked=4, count=words) == "## Goal\nUpgrade M20IZO."
    paragraph = "## Goal\nThe user upgraded M20IZO. They paid $1,194 with the card ending 7334. Then they asked"
    assert without_cut_line(paragraph, asked=16, count=words) == (
        "## Goal\nThe user upgraded M20IZO. They paid $1,194 with the card ending 7334."
    )
