"""Which tokenizer serves a model, and the BPE encoders behind the families.

OpenAI models get their real tiktoken encoding. Claude and Gemini have no public offline
tokenizer, so they get a calibrated estimate on top of o200k_base (see :mod:`.counting`). When a
BPE file cannot be loaded the counter falls back to a character estimate and says so.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from enum import StrEnum

from ..settings import ensure_offline_tokenizers


class Family(StrEnum):
    O200K = "o200k_base"  # gpt-4o, gpt-4.1, gpt-5, o-series, gpt-oss
    CL100K = "cl100k_base"  # gpt-4, gpt-3.5, embeddings, and the generic fallback
    CLAUDE = "claude"  # calibrated estimate over o200k_base
    GEMINI = "gemini"  # calibrated estimate over o200k_base


_O200K = re.compile(r"^(gpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o[1-9]\b|o[1-9]-|chatgpt-4o|gpt-oss|codex|computer-use)")
_CL100K = re.compile(r"^(gpt-4|gpt-3\.5|gpt-35|text-embedding|davinci|babbage)")
_CLAUDE = re.compile(r"(^|[./:-])(claude|anthropic)")
_GEMINI = re.compile(r"(^|[./:-])(gemini|gemma)")


def family_for_model(model: str) -> Family:
    """Map a LiteLLM model string (``provider/model`` allowed) to a tokenizer family."""
    name = model.strip().lower()
    if _CLAUDE.search(name):
        return Family.CLAUDE
    if _GEMINI.search(name):
        return Family.GEMINI
    bare = name.rsplit("/", 1)[-1]
    if _O200K.match(bare):
        return Family.O200K
    if _CL100K.match(bare):
        return Family.CL100K
    # Llama, Mistral, Qwen, DeepSeek …: modern BPEs of 100k–200k entries; o200k is the closest
    # offline stand-in. The result metadata marks the count as approximate.
    return Family.O200K


def is_exact(family: Family, model: str) -> bool:
    """True when the family is the model's own tokenizer (not an estimate)."""
    bare = model.strip().lower().rsplit("/", 1)[-1]
    return (family is Family.O200K and bool(_O200K.match(bare))) or (
        family is Family.CL100K and bool(_CL100K.match(bare))
    )


Encode = Callable[[str], int]

_lock = threading.Lock()
_encoders: dict[str, Encode | None] = {}


def bpe_counter(encoding_name: str) -> Encode | None:
    """A function counting BPE tokens of a string, or ``None`` if the encoding cannot load."""
    with _lock:
        if encoding_name in _encoders:
            return _encoders[encoding_name]
        ensure_offline_tokenizers()
        fn: Encode | None
        try:
            import tiktoken

            enc = tiktoken.get_encoding(encoding_name)
            encode = enc.encode_ordinary

            def fn(text: str) -> int:
                return len(encode(text))
        except Exception:  # no network, no file, broken install: estimate by characters
            fn = None
        _encoders[encoding_name] = fn
        return fn


def char_estimate(text: str) -> int:
    """Fallback when no BPE is available: ~4 characters a token for prose and code alike."""
    return (len(text) + 3) // 4
