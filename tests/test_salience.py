"""Key tokens, line scores and fact retention (pure, deterministic, linear)."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from litellm_ctx_hook.analysis.salience import (
    KeyScanner,
    fact_retention,
    key_tokens,
    line_score,
    shape,
    signals,
)

AIRLINE_RESULT = (
    '{"reservation_id": "4WQ150", "user_id": "mia_li_3668", "origin": "JFK", "destination": "LAX", '
    '"flight_type": "round_trip", "cabin": "economy", "flights": [{"flight_number": "HAT136", '
    '"date": "2024-05-20", "price": 1234.50}], "passengers": [{"first_name": "Mia", "last_name": "Li", '
    '"dob": "1990-04-05"}], "payment_history": [{"payment_id": "credit_card_4421486", "amount": 1234.50}], '
    '"created_at": "2024-05-01T14:30:00", "total_baggages": 1, "insurance": "no"}'
)

STACK_TRACE = """Traceback (most recent call last):
  File "/app/src/payments/refund.py", line 42, in process_refund
    amount = compute_amount(order.total_cents)
  File "/app/src/payments/amounts.py", line 7, in compute_amount
    raise ValueError(f"negative amount {cents}")
ValueError: negative amount -1250"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # numbers: amounts, dates, times, versions
        ("the total is 1,234.50 today", {"1,234.50"}),
        ("we paid $1,234.50 in full", {"$1,234.50"}),
        ("leaving on 2024-05-20 or 05/21/2024 at 14:30", {"2024-05-20", "05/21/2024", "14:30"}),
        ("upgrade to v1.2.3 on python 3.11", {"v1.2.3", "3.11"}),
        ("issue #123 is at 50% and -42 degrees", {"123", "50%", "-42"}),
        # identifiers
        ("call get_user_details with user mia_li_3668", {"get_user_details", "mia_li_3668"}),
        ("the getUserId helper raised TypeError", {"getUserId", "TypeError"}),
        ("use os.path.join and read README.md", {"os.path.join", "README.md"}),
        ("flight HAT136 for reservation 4WQ150", {"HAT136", "4WQ150"}),
        ("id 550e8400-e29b-41d4-a716-446655440000 ok", {"550e8400-e29b-41d4-a716-446655440000"}),
        ("commit 9f86d081884c7d65 landed", {"9f86d081884c7d65"}),
        ("tool ids call_Xk2f9QZ and toolu_01A09q90qw90", {"call_Xk2f9QZ", "toolu_01A09q90qw90"}),
        ("set MAX_TOKENS high", {"MAX_TOKENS"}),
        ("from JFK to LAX", {"JFK", "LAX"}),
        # paths, URLs, e-mail
        ("edit /etc/app/config.yaml now", {"/etc/app/config.yaml"}),
        ("open src/a/b.ts and ./run.sh", {"src/a/b.ts", "./run.sh"}),
        ("look in C:\\Users\\mia\\notes.txt please", {"C:\\Users\\mia\\notes.txt"}),
        ("see https://example.com/a/b?q=1&x=2.", {"https://example.com/a/b?q=1&x=2"}),
        ("write to mia.li@example.com.", {"mia.li@example.com"}),
        # Proper Names, but not at the start of a sentence
        ("we met Alice in Paris. Then we left.", {"Alice", "Paris"}),
        ("i flew with Mia's brother", {"Mia"}),
    ],
)
def test_key_tokens(text: str, expected: set[str]) -> None:
    assert key_tokens(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "the quick brown fox jumps over the lazy dog",
        "Hello there. The weather is nice. Sure, I can help.",
        "and/or, e.g. and i.e. are not facts",
        "- Bullet point\n- Another one",
        "1. First\n2. Second",
        "----- ===== ***** |---|---|",
        "",
    ],
)
def test_no_key_tokens_in_plain_prose(text: str) -> None:
    assert key_tokens(text) == frozenset()


def test_punctuation_and_quotes_are_stripped_and_case_is_kept() -> None:
    keys = key_tokens("Book 'HAT136', then \"4WQ150\"; confirm (mia_li_3668)! Ids: `Abc9x`.")
    assert {"HAT136", "4WQ150", "mia_li_3668", "Abc9x"} <= keys
    assert not any(k[-1] in ".,;:!?'\"`" for k in keys)


def test_json_and_key_value_text() -> None:
    keys = key_tokens(AIRLINE_RESULT)
    assert {"4WQ150", "mia_li_3668", "HAT136", "JFK", "LAX", "2024-05-20", "1234.50", "credit_card_4421486"} <= keys
    assert {"Mia", "Li"} <= keys  # JSON string values are not sentence starts
    assert {"raj_sanchez_7340", "HAT137"} <= key_tokens("{'user_id':'HAT137'} user_id=raj_sanchez_7340")


def test_stack_trace() -> None:
    keys = key_tokens(STACK_TRACE)
    assert {
        "/app/src/payments/refund.py",
        "/app/src/payments/amounts.py",
        "42",
        "process_refund",
        "compute_amount",
        "order.total_cents",
        "ValueError",
        "-1250",
    } <= keys


def test_scanner_reuse_gives_the_same_answers() -> None:
    scan = KeyScanner()
    for text in (AIRLINE_RESULT, STACK_TRACE, AIRLINE_RESULT, "we met Alice", "Alice met us"):
        assert scan(text) == key_tokens(text)


def test_line_score_boilerplate_is_zero() -> None:
    for line in ("", "  ", "ok", "}", "-----", "=====", "|---|---|", "```", "***"):
        assert line_score(line) == 0.0
        assert signals(line) is None


def test_line_score_rewards_facts_questions_decisions_and_errors() -> None:
    plain = line_score("we talked about the weather for a while")
    assert line_score("we talked about the weather for a while?") > plain
    assert line_score("we decided the weather is fine and booked it") > plain
    assert line_score("we talked about flight HAT136 on 2024-05-20") > plain
    assert line_score("ValueError: the weather for a while") > line_score("Valuable: the weather for a while")
    assert line_score("Traceback (most recent call last):") > line_score("Paperback (most recent call last):")
    # short lines without facts are penalised, short lines with facts are not
    assert line_score("Done, thanks.") < line_score("Done: HAT136.")


def test_line_score_prefers_dense_lines() -> None:
    dense = "cancel 4WQ150 for mia_li_3668"
    padded = dense + " " + "and so on " * 60
    assert line_score(dense) > line_score(padded)


def test_known_keys_weigh_less() -> None:
    found = signals("rebook HAT136 and HAT137 for mia_li_3668")
    assert found is not None
    assert found.score() == line_score("rebook HAT136 and HAT137 for mia_li_3668")
    assert found.score({"HAT136"}) < found.score()
    assert found.score(set(found.keys)) < found.score({"HAT136"})


def test_shape_folds_digits_case_and_spacing() -> None:
    assert shape("Processing item 12 of 400") == shape("processing  item 13 of 400 ")
    assert shape("a b") != shape("a c")


def test_fact_retention() -> None:
    assert fact_retention("nothing to see here", "") == 1.0
    assert fact_retention("flight HAT136 on 2024-05-20", "HAT136 and 2024-05-20") == 1.0
    assert fact_retention("flight HAT136 on 2024-05-20", "it was HAT136") == 0.5
    assert fact_retention(STACK_TRACE, "") == 0.0


@given(st.text(max_size=400))
@hsettings(max_examples=300, deadline=None)
def test_key_tokens_are_substrings_without_spaces(text: str) -> None:
    keys = key_tokens(text)
    assert keys == key_tokens(text)
    for k in keys:
        assert k and k in text
        assert not any(c.isspace() for c in k)
    score = line_score(text)
    assert score >= 0.0 and math.isfinite(score)


_rnd = random.Random(7)
ADVERSARIAL = {
    "one long word": "a" * 2_000_000,
    "no spaces, slashes": "a/" * 1_000_000,
    "no spaces, commas": "1," * 1_000_000,
    "no spaces, at signs": "a@" * 1_000_000,
    "dots": "a." * 1_000_000,
    "URL prefixes": "http://" * 290_000,
    "camel with dashes": ("aB" * 128 + "-x ") * 7_900,
    "near snake": ("x" * 255 + "_ ") * 7_800,
    "capitals": "A " * 1_000_000,
    "unique ids": " ".join(f"Ab{_rnd.randrange(10**6)}." for _ in range(220_000)),
    "plain words": "word " * 400_000,
    "error words": "Error" * 400_000,
    "question marks": "?" * 2_000_000,
    "newlines": "\n" * 2_000_000,
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
@pytest.mark.parametrize("fn", [key_tokens, line_score, shape], ids=["key_tokens", "line_score", "shape"])
def test_linear_on_adversarial_megabytes(name: str, fn: Callable[[str], object]) -> None:
    text = ADVERSARIAL[name]
    assert len(text) >= 1_900_000
    started = time.process_time()  # this process's CPU time: other processes on the machine do not count
    fn(text)
    # Generous for a slow machine: catastrophic backtracking would take minutes, not seconds.
    assert time.process_time() - started < 5.0


def test_score_weighs_keys_and_adds_extra_before_the_length_normalisation() -> None:
    found = signals("rebook HAT136 and HAT137 for Nate")
    assert found is not None
    assert found.score(weights={}) == found.score()  # weights default to 1
    assert found.score(weights={"Nate": 0.0}) < found.score()  # a name said everywhere adds nothing new
    assert found.score(weights={"Nate": 0.0}, known={"HAT136"}) < found.score(weights={"Nate": 0.0})
    assert found.score(extra=1.0) > found.score()
    short = signals("ok pho")
    assert short is not None and short.score(extra=0.5) > 2 * short.score()  # rare words: not filler
