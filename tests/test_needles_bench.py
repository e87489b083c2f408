"""The needle benchmark on a tiny session: our engine keeps more of what stands out than trim_messages."""

from __future__ import annotations

from bench import needles


def test_every_kind_of_output_holds_its_needle_once() -> None:
    outs = needles.outputs(len(needles.KINDS))
    assert [o.needle.kind for o in outs] == list(needles.KINDS)
    for out in outs:
        text = out.text
        assert needles.visible([out.needle], text) == [True]
        assert sum(1 for line in text.splitlines() if all(m in line for m in out.needle.markers)) == 1
        assert len(text.splitlines()) > 50  # among many similar lines
    assert needles.outputs(3) == needles.outputs(3)  # reproducible


def test_clear_tool_uses_keeps_the_last_three_results() -> None:
    outs = needles.outputs(5)
    messages = needles.session(outs, 5)
    cleared = needles.Bench.clear_tool_uses(messages, 10, lambda m: 10**6)
    results = [m["content"] for m in cleared if m["role"] == "tool"]
    assert results[:2] == [needles.CLEARED] * 2
    assert results[2:] == [o.text for o in outs[2:]]
    assert needles.Bench.clear_tool_uses(messages, 10**6, lambda m: 1) == messages  # within budget: untouched


def test_ours_keeps_more_needles_than_trim_messages() -> None:
    result = needles.run(calls=8, windows=[32_000])
    methods = result["windows"]["32000"]["methods"]
    ours, trim = methods["ours"], methods["trim"]
    assert ours["tokens"] <= result["windows"]["32000"]["budget"]
    assert trim["tokens"] <= result["windows"]["32000"]["budget"]
    assert ours["needles_visible"] > trim["needles_visible"]
    assert ours["needles_visible"] >= 0.75
    compress = methods["compress"]
    assert isinstance(compress, dict) or compress == "n/a (LiteLLM < 1.110)"
