"""Per-model token counting."""

from __future__ import annotations

from typing import Any

import tiktoken
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from support import anthropic_body, openai_chat, png_data_url, settings

from litellm_ctx_hook.adapters import adapter_for
from litellm_ctx_hook.analysis.counting import FrozenTools, TokenCounter
from litellm_ctx_hook.analysis.images import anthropic_image_tokens, image_size, openai_image_tokens, size_of_data_url
from litellm_ctx_hook.analysis.tokenizers import Family, family_for_model


def cookbook_count(messages: list[dict[str, str]], encoding: str) -> int:
    """OpenAI cookbook's num_tokens_from_messages, written out independently."""
    enc = tiktoken.get_encoding(encoding)
    n = 0
    for m in messages:
        n += 3
        for key, value in m.items():
            n += len(enc.encode(value))
            if key == "name":
                n += 1
    return n + 3


text_messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["system", "user", "assistant"]), "content": st.text(max_size=200)},
        optional={"name": st.from_regex(r"[a-z]{1,8}", fullmatch=True)},
    ),
    min_size=1,
    max_size=8,
)


@hsettings(max_examples=60, deadline=None)
@given(text_messages)
def test_openai_text_chat_matches_documented_formula(messages: list[dict[str, str]]) -> None:
    counter = TokenCounter(settings())
    conv = adapter_for("openai").parse({"messages": messages})
    assert counter.count(conv, "gpt-4o").total == cookbook_count(messages, "o200k_base")
    assert counter.count(conv, "openai/gpt-4-0613").total == cookbook_count(messages, "cl100k_base")


def test_family_resolution() -> None:
    assert family_for_model("gpt-4o-mini") is Family.O200K
    assert family_for_model("azure/gpt-4.1") is Family.O200K
    assert family_for_model("o3-mini") is Family.O200K
    assert family_for_model("gpt-3.5-turbo") is Family.CL100K
    assert family_for_model("anthropic/claude-opus-4-6") is Family.CLAUDE
    assert family_for_model("bedrock/us.anthropic.claude-3-5-sonnet") is Family.CLAUDE
    assert family_for_model("vertex_ai/gemini-2.5-pro") is Family.GEMINI


def test_growing_conversation_costs_one_message() -> None:
    counter = TokenCounter(settings())
    msgs = openai_chat(20)
    counter.count(adapter_for("openai").parse({"messages": msgs}), "gpt-4o")
    misses = counter.misses
    msgs = [*msgs, {"role": "user", "content": "one more"}]
    counter.count(adapter_for("openai").parse({"messages": msgs}), "gpt-4o")
    assert counter.misses == misses + 1


def test_cache_is_bounded() -> None:
    counter = TokenCounter(settings(tiktoken_cache_size=5))
    counter.count(adapter_for("openai").parse({"messages": openai_chat(5)}), "gpt-4o")
    assert counter.cache_size == 5


def test_claude_estimate_exceeds_raw_bpe() -> None:
    counter = TokenCounter(settings())
    conv = adapter_for("anthropic").parse(anthropic_body(10))
    claude = counter.count(conv, "anthropic/claude-sonnet-4-5")
    assert claude.method == "calibrated" and not claude.exact
    raw = sum(counter.count_text(p.text, Family.O200K) for m in conv.messages for p in m.parts)
    assert claude.total > raw  # Claude's tokenizer yields more tokens than o200k on the same text


def test_character_fallback_is_reported() -> None:
    counter = TokenCounter(settings(enable_accurate_token_counting=False))
    c = counter.count(adapter_for("openai").parse({"messages": openai_chat(1)}), "gpt-4o")
    assert c.method == "characters" and not c.exact and c.notes


def test_image_sizes_from_headers() -> None:
    assert size_of_data_url(png_data_url(1024, 768)) == (1024, 768)
    gif = b"GIF89a" + (300).to_bytes(2, "little") + (200).to_bytes(2, "little")
    assert image_size(gif) == (300, 200)
    jpeg = b"\xff\xd8\xff\xc0\x00\x11\x08" + (480).to_bytes(2, "big") + (640).to_bytes(2, "big") + b"\x03" + b"\0" * 9
    assert image_size(jpeg) == (640, 480)
    assert image_size(b"not an image") is None


def test_image_token_formulas() -> None:
    assert openai_image_tokens(1024, 1024, "low") == 85
    assert openai_image_tokens(1024, 1024, "high") == 765  # 768x768 → 4 tiles
    assert openai_image_tokens(2048, 4096, "auto") == 1105  # → 1024x2048 → 768x1536 → 6 tiles
    assert anthropic_image_tokens(1000, 1000) == 1334


def test_image_counting_uses_dimensions_or_description() -> None:
    counter = TokenCounter(settings())
    img = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": png_data_url(1024, 1024)}}]}
    remote = {"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://h/x.png"}}]}
    conv = adapter_for("openai").parse({"messages": [img, remote]})
    c = counter.count(conv, "gpt-4o", {1: "a" * 40})
    framing = 3 + 1  # per message + role
    assert c.messages[0] == framing + 765
    assert c.messages[1] == framing + 85 + 10  # BASE_IMAGE_TOKENS + 40 chars * 0.25


def test_tools_add_overhead() -> None:
    counter = TokenCounter(settings())
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather.",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    bare = counter.count(adapter_for("openai").parse({"messages": openai_chat(1)}), "gpt-4o").total
    with_tools = counter.count(adapter_for("openai").parse({"messages": openai_chat(1), "tools": tools}), "gpt-4o")
    assert with_tools.tools > 0 and with_tools.total == bare + with_tools.tools


def test_frozen_tools_count_as_the_same_tools_and_their_json_is_made_once(monkeypatch: Any) -> None:
    import litellm_ctx_hook.analysis.counting as counting

    tools = [
        {"type": "function", "function": {"name": f"tool_{i}", "description": "Run it. " * 40, "parameters": {}}}
        for i in range(6)
    ]
    frozen = FrozenTools(tools)
    assert frozen == tuple(tools)
    for family in (Family.O200K, Family.CLAUDE):
        assert TokenCounter(settings()).count_tools(frozen, family) == TokenCounter(settings()).count_tools(
            tools, family
        )
    calls: list[object] = []
    real = counting.as_json
    monkeypatch.setattr(counting, "as_json", lambda value, where: calls.append(value) or real(value, where))
    counter = TokenCounter(settings())
    for _ in range(3):
        counter.count_tools(frozen, Family.CLAUDE)
    assert calls == []  # counted by the JSON made when they were frozen
    counter.count_tools(tools, Family.CLAUDE)
    assert len(calls) == 1
