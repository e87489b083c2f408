"""Versioned cache values and their (optionally HMAC-signed) JSON envelope.

Wire format (UTF-8 JSON)::

    {"body": {"v": 1, ...entry fields...}, "sig": "<hex HMAC-SHA256>"}      # "sig" only when signed

The MAC covers a domain tag, the entry type, a caller-supplied context (the store passes the
Redis key, so a signed entry copied to another key or tenant no longer verifies) and the canonical
JSON of ``body`` (sorted keys, no spaces). With a signing key, unsigned and forged entries are
rejected; without one, signatures are ignored. :func:`decode` never raises: anything unreadable is
``None`` and its reason is counted (``corrupt``, ``version``, ``forged``, ``unsigned``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .counters import CacheStats

_MAC_DOMAIN = b"ctxhook-entry-v1"


class VersionedEntry(BaseModel):
    """Base of every cached value; ``VERSION`` is the only ``v`` a reader accepts."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    VERSION: ClassVar[int] = 1


class SummaryEntry(VersionedEntry):
    """A summary of the atoms ``0..atoms_covered-1`` of a conversation (the span its digest names)."""

    v: Literal[1] = 1
    summary: str
    atoms_covered: int = Field(ge=0)
    strategy: str
    model: str
    prompt_version: str
    tokens: int = Field(ge=0)
    created_at: float  # wall-clock seconds (time.time()) when the summary was made
    # Made by the extractive condenser in place of a summariser model that had not answered in
    # time: used until the model's summary (made in the background) replaces it.
    provisional: bool = False
    # The limit (window less reserved output) of the request it was made for; None: not recorded.
    room: int | None = Field(default=None, ge=0)

    def suits(self, room: int) -> bool:
        """Whether this summary may stand, as it is, in a request of ``room``: one made for less
        than half that room (another model's window, a fallback deployment, another
        ``max_tokens``) says too little for it, and the span is condensed anew."""
        return self.room is None or 2 * self.room >= room


class AnalysisEntry(VersionedEntry):
    """A JSON-serialisable analysis result (counts, risk …), opaque to the cache."""

    v: Literal[1] = 1
    payload: dict[str, Any]
    created_at: float


E = TypeVar("E", bound=VersionedEntry)


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON bytes: sorted keys, no whitespace, UTF-8, NaN/Infinity refused."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def mac(signing_key: str, type_name: str, context: str, body: bytes) -> str:
    """The entry's signature: HMAC-SHA256 under ``signing_key`` over the domain, the entry's type, its
    context (the key it is stored under) and its canonical body, hex."""
    msg = b"\n".join((_MAC_DOMAIN, type_name.encode("utf-8"), context.encode("utf-8"), body))
    return hmac.new(signing_key.encode("utf-8"), msg, hashlib.sha256).hexdigest()


def encode(entry: VersionedEntry, signing_key: str | None, *, context: str = "") -> bytes:
    """The envelope bytes of ``entry``; signed when ``signing_key`` is set.

    Raises ``ValueError`` only for values JSON cannot carry (e.g. an arbitrary object in a payload).
    """
    body = entry.model_dump(mode="json")
    envelope: dict[str, Any] = {"body": body}
    if signing_key:
        envelope["sig"] = mac(signing_key, type(entry).__name__, context, canonical_json(body))
    return canonical_json(envelope)


def decode(
    raw: bytes | str | None,
    model_cls: type[E],
    signing_key: str | None,
    *,
    context: str = "",
    stats: CacheStats | None = None,
) -> E | None:
    """The entry stored in ``raw``, or ``None`` (reason counted in ``stats``); never raises."""
    if raw is None:
        return None
    entry, reason = _decode(raw, model_cls, signing_key, context)
    if reason is not None and stats is not None:
        stats.reject(reason)
    return entry


def _decode(raw: bytes | str, model_cls: type[E], signing_key: str | None, context: str) -> tuple[E | None, str | None]:
    try:
        envelope = json.loads(raw)
    except (ValueError, TypeError, RecursionError):
        return None, "corrupt"
    if not isinstance(envelope, dict) or not isinstance(envelope.get("body"), dict):
        return None, "corrupt"
    body: dict[str, Any] = envelope["body"]
    if signing_key:
        sig = envelope.get("sig")
        if sig is None:
            return None, "unsigned"
        if not isinstance(sig, str):
            return None, "forged"
        try:
            expected = mac(signing_key, model_cls.__name__, context, canonical_json(body))
        except (ValueError, TypeError, RecursionError):
            return None, "corrupt"
        if not hmac.compare_digest(sig.encode("utf-8", "replace"), expected.encode("ascii")):
            return None, "forged"
    if body.get("v") != model_cls.VERSION:
        return None, "version"
    try:
        return model_cls.model_validate(body), None
    except (ValidationError, ValueError, TypeError, RecursionError):
        return None, "corrupt"
