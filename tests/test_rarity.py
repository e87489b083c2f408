"""Rarity of words within a span: words, weights, mass."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from litellm_ctx_hook.condensing.local.rarity import MIN_WORD, RARE_UNITS, STOP_WORDS, mass, rarity_weights, words


def test_words_are_lower_cased_runs_without_stop_words_or_short_ones() -> None:
    found = words("Hey Nate! We went skiing in Aspen on 2023-12-30, at 20:43. Café über-cool; it's OK")
    assert found == {b"hey", b"nate", b"went", b"skiing", b"aspen", b"2023", b"caf\xc3\xa9", b"\xc3\xbcber", b"cool"}
    assert not found & STOP_WORDS and all(len(w) >= MIN_WORD for w in found)


def test_a_word_everywhere_weighs_nothing_and_a_rare_one_everything() -> None:
    units = [words(f"Hey Nate, line {i} about topic{i}") for i in range(RARE_UNITS)]
    weights = rarity_weights(units, len(units))
    assert weights[b"hey"] == weights[b"nate"] == weights[b"line"] == 0.0
    assert weights[b"topic7"] == 1.0
    assert rarity_weights([{b"x"}], 1) == {b"x": 0.0}  # one unit: nothing is rarer than anything


def test_a_small_span_weighs_a_unique_word_by_its_size() -> None:
    weights = rarity_weights([{b"a"}, {b"b"}, {b"a", b"c"}, set()], 4)
    assert math.isclose(weights[b"b"], math.log(4) / math.log(RARE_UNITS))
    assert weights[b"a"] < weights[b"b"] == weights[b"c"]


@given(st.lists(st.sets(st.sampled_from("abcdefgh")), min_size=1, max_size=120))
def test_weights_are_within_0_and_1_and_fall_as_a_word_spreads(groups: list[set[str]]) -> None:
    weights = rarity_weights(groups, len(groups))
    assert all(0.0 <= w <= 1.0 for w in weights.values())
    spread = {w: sum(1 for g in groups if w in g) for w in weights}
    for a in weights:
        for b in weights:
            if spread[a] < spread[b]:
                assert weights[a] >= weights[b]


def test_mass_sums_the_weights_of_what_is_not_known() -> None:
    weights = {b"pho": 1.0, b"love": 0.25}
    assert mass(frozenset({b"pho", b"love", b"unweighed"}), weights) == 1.25
    assert mass(frozenset({b"pho", b"love"}), weights, {b"pho"}) == 0.25
