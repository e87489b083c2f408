"""Token counting for the model that will serve a request, cached per message.

OpenAI families use tiktoken with OpenAI's documented chat framing (3 tokens per message, +1 per
``name``, +3 to prime the reply) and tool-definition overhead. Claude and Gemini use a linear
estimate ``a·BPE + b·blocks + c`` per message, fitted on real provider usage
(``bench/calibrate_counts.py``; the fit is reported in BENCHMARKS.md). Each message's count is kept
in an LRU keyed by (tokenizer, content hash), so a conversation that grows by one message costs one
message to recount.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..adapters.base import as_json
from ..conversation import Conversation, Message, Part, PartKind
from ..runtime.offloop import on_worker
from ..runtime.pacing import pace
from ..settings import Settings
from .images import (
    anthropic_image_tokens,
    described_image_tokens,
    openai_image_tokens,
    size_of_base64,
    size_of_data_url,
)
from .tokenizers import Family, bpe_counter, char_estimate, family_for_model, is_exact

# Count uncached text above this many characters (~20k tokens) off the event loop.
OFF_LOOP_CHARS = 80_000
TEXT_CACHE_MIN_CHARS = 256  # shorter texts are cheaper to encode again than to look up


@dataclass(frozen=True, slots=True)
class Calibration:
    """Linear per-message estimate for providers without a public offline tokenizer.

    ``tokens = Σ_kind scale[kind]·bpe[kind] + Σ_kind per_block[kind]·blocks[kind] + per_message``
    with ``bpe`` the o200k_base count of each part's text.
    """

    scale: Mapping[PartKind, float]
    per_block: Mapping[PartKind, float]
    per_message: float
    per_tool_def: float  # fixed cost of each tool definition on top of its scaled JSON

    def estimate(self, features: Features) -> float:
        bpe, blocks = features
        total = self.per_message
        for kind, n in bpe.items():
            total += self.scale.get(kind, self.scale.get(PartKind.TEXT, 1.0)) * n
        for kind, n in blocks.items():
            total += self.per_block.get(kind, 0.0) * n
        return total


Features = tuple[dict[PartKind, int], dict[PartKind, int]]

# Fitted by ``python -m bench.calibrate_counts`` on ../shared/evaldata (fit in BENCHMARKS.md).
CLAUDE = Calibration(
    scale={PartKind.TEXT: 1.096, PartKind.THINKING: 2.014, PartKind.TOOL_CALL: 1.476, PartKind.TOOL_RESULT: 1.192},
    # The call/result pair costs ~88 tokens of framing; split so an orphan half still counts.
    per_block={PartKind.TEXT: 8.455, PartKind.THINKING: -1.6, PartKind.TOOL_CALL: 44.0, PartKind.TOOL_RESULT: 44.0},
    per_message=-3.905,
    per_tool_def=20.0,
)
GEMINI = Calibration(scale={PartKind.TEXT: 1.202}, per_block={}, per_message=-1.44, per_tool_def=10.0)
_CALIBRATIONS = {Family.CLAUDE: CLAUDE, Family.GEMINI: GEMINI}

# OpenAI chat framing (OpenAI cookbook "How to count tokens with tiktoken").
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
# OpenAI tool-definition overhead (same cookbook, gpt-4o family).
FUNC_INIT, PROP_INIT, PROP_KEY, ENUM_INIT, ENUM_ITEM, FUNC_END = 7, 3, 3, -3, 3, 12


class FrozenTools(tuple[Mapping[str, Any], ...]):
    """Tool definitions that are never changed (the holder's own copies, never handed out): their
    JSON, which their count is keyed by, is made once instead of on every count."""

    json: str

    def __new__(cls, tools: Sequence[Mapping[str, Any]]) -> FrozenTools:
        self = super().__new__(cls, tools)
        self.json = as_json(list(self), "tools")
        return self


@dataclass(frozen=True, slots=True)
class RequestCount:
    """The token count of one request for one model, with how it was obtained."""

    total: int
    messages: tuple[int, ...]
    system: int
    tools: int
    framing: int
    family: Family
    method: str  # "tiktoken" | "calibrated" | "characters"
    exact: bool
    notes: tuple[str, ...] = ()

    def as_metadata(self) -> dict[str, Any]:
        return {
            "tokenizer": self.family.value,
            "counting_method": self.method,
            "counting_exact": self.exact,
            "counting_notes": list(self.notes),
        }


class TokenCounter:
    """Counts requests for a target model; thread-safe; one per engine."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._cache: OrderedDict[tuple[Any, ...], int] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    # -- cache -------------------------------------------------------------------------------
    def clear(self) -> None:
        with self._lock:
            self._cache.clear()
            self.hits = self.misses = 0

    @property
    def cache_size(self) -> int:
        return len(self._cache)

    def _cached(self, key: tuple[Any, ...], tally: bool = True) -> int | None:
        with self._lock:
            value = self._cache.get(key)
            if value is not None:
                self._cache.move_to_end(key)
            if tally:
                if value is not None:
                    self.hits += 1
                else:
                    self.misses += 1
            return value

    def _store(self, key: tuple[Any, ...], value: int) -> None:
        limit = self._settings.tiktoken_cache_size
        if limit <= 0:
            return
        with self._lock:
            self._cache[key] = value
            self._cache.move_to_end(key)
            while len(self._cache) > limit:
                self._cache.popitem(last=False)

    # -- text --------------------------------------------------------------------------------
    def _method(self, family: Family) -> tuple[str, Any]:
        if not self._settings.enable_accurate_token_counting:
            return "characters", None
        encoding = Family.O200K.value if family in (Family.CLAUDE, Family.GEMINI) else family.value
        fn = bpe_counter(encoding)
        if fn is None:
            return "characters", None
        return ("calibrated" if family in _CALIBRATIONS else "tiktoken"), fn

    def count_text(self, text: str, family: Family) -> int:
        """BPE tokens of plain text for the family (raw, before calibration or framing).

        Long texts are remembered (the parts of a message are counted again when tiers edit it).
        """
        _, fn = self._method(family)
        if fn is None:
            return char_estimate(text)
        if len(text) < TEXT_CACHE_MIN_CHARS:
            return int(fn(text))
        key = (family, "text", hash(text), len(text))
        value = self._cached(key, tally=False)
        if value is None:
            value = int(fn(text))
            self._store(key, value)
        return value

    # -- parts and messages ------------------------------------------------------------------
    def _image_tokens(self, part: Part, family: Family, description: str | None) -> int:
        s = self._settings
        img = part.image
        if s.enable_dynamic_image_tokens and img is not None:
            size = None
            if img.url:
                size = size_of_data_url(img.url)
            elif img.data:
                size = size_of_base64(img.data)
            if size is not None:
                if family is Family.CLAUDE:
                    return anthropic_image_tokens(*size)
                return openai_image_tokens(size[0], size[1], img.detail)
        return described_image_tokens(s.base_image_tokens, s.image_tokens_per_char, description)

    def features(self, message: Message, family: Family) -> Features:
        """BPE tokens and block counts of a message's text parts, by part kind (images excluded)."""
        bpe: dict[PartKind, int] = {}
        blocks: dict[PartKind, int] = {}
        for part in message.parts:
            if part.kind is PartKind.IMAGE:
                continue
            bpe[part.kind] = bpe.get(part.kind, 0) + self.count_text(part.text, family)
            blocks[part.kind] = blocks.get(part.kind, 0) + 1
        return bpe, blocks

    def _message_tokens(self, message: Message, family: Family, description: str | None) -> int:
        images = sum(self._image_tokens(p, family, description) for p in message.parts if p.kind is PartKind.IMAGE)
        features = self.features(message, family)
        cal = _CALIBRATIONS.get(family)
        if cal is not None:
            return max(0, round(cal.estimate(features))) + images  # the fit's negative intercept: never below 0
        # OpenAI documented framing: every value of the message is encoded (role, content, name).
        total = TOKENS_PER_MESSAGE + self.count_text(message.raw_role, family) + sum(features[0].values())
        if message.name:
            total += self.count_text(message.name, family) + TOKENS_PER_NAME
        return total + images

    def count_message(self, message: Message, family: Family, description: str | None = None) -> int:
        key = (family, self._settings.enable_accurate_token_counting, message.signature, description)
        cached = self._cached(key)
        if cached is not None:
            return cached
        pace()
        value = self._message_tokens(message, family, description)
        self._store(key, value)
        return value

    def count_parts(self, parts: Sequence[Part], family: Family) -> int:
        """A separate system prompt (Anthropic ``system``, Responses ``instructions``)."""
        if not parts:
            return 0
        return self.count_message(Message.system_of(tuple(parts)), family)

    def count_tools(self, tools: Sequence[Mapping[str, Any]], family: Family) -> int:
        if not tools:
            return 0
        text = tools.json if isinstance(tools, FrozenTools) else as_json(list(tools), "tools")
        key = (family, "tools", hash(text))
        cached = self._cached(key)
        if cached is not None:
            return cached
        cal = _CALIBRATIONS.get(family)
        if cal is not None:
            value = round(
                cal.scale.get(PartKind.TEXT, 1.0) * self.count_text(text, family) + cal.per_tool_def * len(tools)
            )
        else:
            value = self._openai_tools(tools, family)
        self._store(key, value)
        return value

    def _openai_tools(self, tools: Sequence[Mapping[str, Any]], family: Family) -> int:
        total = 0
        for tool in tools:
            fn = tool.get("function") if isinstance(tool.get("function"), Mapping) else tool
            assert isinstance(fn, Mapping)
            total += FUNC_INIT
            total += self.count_text(f"{fn.get('name', '')}:{fn.get('description', '')}", family)
            params = fn.get("parameters")
            props = params.get("properties") if isinstance(params, Mapping) else None
            if isinstance(props, Mapping) and props:
                total += PROP_INIT
                for key, spec in props.items():
                    total += PROP_KEY
                    if not isinstance(spec, Mapping):
                        continue
                    desc = str(spec.get("description", "")).rstrip(".")
                    total += self.count_text(f"{key}:{spec.get('type', '')}:{desc}", family)
                    enum = spec.get("enum")
                    if isinstance(enum, list):
                        total += ENUM_INIT + sum(ENUM_ITEM + self.count_text(str(e), family) for e in enum)
        return total + FUNC_END

    # -- whole requests ----------------------------------------------------------------------
    def count(
        self,
        conversation: Conversation,
        model: str,
        image_descriptions: Mapping[int, str] | None = None,
    ) -> RequestCount:
        family = family_for_model(model)
        descriptions = image_descriptions or {}
        per_message = tuple(
            self.count_message(m, family, descriptions.get(i)) for i, m in enumerate(conversation.messages)
        )
        return self.assemble(model, per_message, conversation.system, conversation.tools)

    def assemble(
        self, model: str, per_message: tuple[int, ...], system: Sequence[Part], tools: Sequence[Mapping[str, Any]]
    ) -> RequestCount:
        """The request's count from its messages' counts, its system prompt and its tools."""
        family = family_for_model(model)
        method, _ = self._method(family)
        system_tokens = self.count_parts(system, family)
        tool_tokens = self.count_tools(tools, family)
        framing = REPLY_PRIMING if family not in _CALIBRATIONS else 0
        notes: list[str] = []
        if method == "characters":
            notes.append("no BPE tokenizer available: character estimate (~4 chars/token)")
        elif method == "calibrated":
            notes.append(f"{family.value}: calibrated estimate over o200k_base")
        elif not is_exact(family, model):
            notes.append(f"no tokenizer known for {model!r}: approximated with {family.value}")
        return RequestCount(
            total=sum(per_message) + system_tokens + tool_tokens + framing,
            messages=per_message,
            system=system_tokens,
            tools=tool_tokens,
            framing=framing,
            family=family,
            method=method,
            exact=method == "tiktoken" and is_exact(family, model),
            notes=tuple(notes),
        )

    async def count_async(
        self,
        conversation: Conversation,
        model: str,
        image_descriptions: Mapping[int, str] | None = None,
    ) -> RequestCount:
        """Like :meth:`count`; large uncached work runs in a thread so the event loop stays free."""
        family = family_for_model(model)
        accurate = self._settings.enable_accurate_token_counting
        descriptions = image_descriptions or {}
        with self._lock:
            uncached = sum(
                sum(len(p.text) for p in m.parts)
                for i, m in enumerate(conversation.messages)
                if (family, accurate, m.signature, descriptions.get(i)) not in self._cache
            )
        if uncached > OFF_LOOP_CHARS and not on_worker():  # (the worker's loop is off the proxy's already)
            return await asyncio.to_thread(self.count, conversation, model, image_descriptions)
        return self.count(conversation, model, image_descriptions)
