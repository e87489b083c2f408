"""Cues of plain conversation: headers, first person, the cheap ranking of a long chat."""

from __future__ import annotations

from litellm_ctx_hook.condensing.local.chat import chat_prescores, is_header, speaks_of_self
from litellm_ctx_hook.condensing.local.rarity import rarity_weights, words


def test_headers_are_bracketed_lines_with_a_digit() -> None:
    assert is_header("[Session 3 — 2024-01-05 20:00]")
    assert not is_header("[user] hello") and not is_header("[Session three]") and not is_header("")


def test_first_person_lines() -> None:
    assert speaks_of_self("I love eating pho")
    assert speaks_of_self("Yeah my cousin lives there")
    assert speaks_of_self("im at the movies")
    assert not speaks_of_self("How are you doing today?") and not speaks_of_self("Idaho is far")


def test_chat_prescores_favour_rare_words_and_halve_repeats() -> None:
    texts = ["Hey Nate!", "Hey Nate!", "We hiked Zion and Bryce canyons", *["Hey Nate, morning"] * 5]
    found = [words(t) for t in texts]
    scores = chat_prescores(texts, [0.0] * len(texts), found, rarity_weights(found, len(found)), 0.5)
    assert scores[2] == max(scores)
    assert scores[1] < scores[0]  # the repeat
    with_bonus = chat_prescores(texts, [1.0] * len(texts), found, rarity_weights(found, len(found)), 0.5)
    assert all(abs(b - a - 1.0) < 1e-9 for a, b in zip(scores, with_bonus, strict=True))
