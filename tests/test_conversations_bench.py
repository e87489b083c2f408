"""The chat benchmark's building blocks on the real chats (skipped when ../shared/evaldata is absent)."""

from __future__ import annotations

import pytest

from bench import conversations as conv
from bench import evaldata

needs_chats = pytest.mark.skipif(not evaldata.chats_available(), reason="../shared/evaldata/conversations is absent")


def test_the_content_word_rule() -> None:
    fact = conv.Fact("I love eating pho", conv.content_words("I love eating pho"))
    assert fact.words == {"love", "eating", "pho"}
    assert conv.kept_flags([fact], "[user] pho, eating it with love\nnothing") == [True]
    assert conv.kept_flags([fact], "[user] love\n[assistant] eating\npho") == [False]  # one word a line
    assert conv.anywhere_kept([fact], "[user] love\n[assistant] eating\npho") == 1
    assert conv.verbatim_kept([fact], "I love eating pho today") == 1


@needs_chats
def test_realtalk_chats_as_requests() -> None:
    cases = conv.load_cases("realtalk")
    assert len(cases) == 5
    for case in cases:
        assert case.messages[-1]["role"] == "user" and case.messages[0]["content"].startswith("[Session 1 — ")
        assert {m["role"] for m in case.messages} == {"user", "assistant"}
        assert case.facts and all(f.words for f in case.facts)
        text = conv.text_of(case.messages)
        flags = conv.kept_flags(case.facts, text)
        assert sum(flags) >= 0.95 * len(flags)  # all but turns written over several lines


@needs_chats
@pytest.mark.slow
def test_a_realtalk_chat_at_a_quarter_keeps_more_evidence_than_trim_messages() -> None:
    bench = conv.Bench()
    case = conv.load_cases("realtalk")[2]
    budget = bench.budget(case, 0.25)
    engine = conv.engine_for_budget()
    trim, compaction, ours = (
        bench.trim(case, budget, engine),
        bench.compaction(case, budget),
        bench.ours(case, budget, engine),
    )
    for out in (trim, compaction, ours):
        assert out.tokens <= budget and not out.rejected
    assert "[also mentioned]" in compaction.summary or compaction.summary
    kept = {name: conv.facts_kept(case.facts, out.text) for name, out in (("trim", trim), ("ours", ours))}
    assert kept["ours"] > 1.3 * kept["trim"]
    assert conv.measure(case, ours, bench.count_text)["summary_tokens"] > 0
