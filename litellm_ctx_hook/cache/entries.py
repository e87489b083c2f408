"""Versioned cache values and their (optionally HMAC-signed) JSON envelope.

Wire format (UTF-8 JSON)::

    {"body": {"v": 2, "compat": 2, ...entry fields...}, "sig": "<hex HMAC-SHA256>"}   # "sig" only when signed

``v`` is the entry format the writer used and ``compat`` the oldest format whose reader reads the
entry right (format 1 has no ``compat``). Formats:

* **1** — the entry's fields; a reader of format 1 accepts ``v == 1`` only and refuses any field it
  does not know (an entry with a field added later looks corrupt to it).
* **2** — the same fields, plus ``compat``; a reader of format 2 or later reads format 1, and reads
  any later format whose ``compat`` is at most its own, ignoring the fields it does not know. A
  format that only adds fields keeps ``compat``; one that changes what a field means raises it, and
  older readers then skip such entries (counted as ``version``, not ``corrupt``) instead of
  misreading them.

A rolling upgrade across a format change keeps every replica able to read what the others write:
a release writes the format before its own while ``CONTEXT_CACHE_ENTRY_FORMAT`` says so (set it to
the old format until no replica of the older release is left). The Redis key schema (``ctxhook:v1``
in :mod:`.keys`) is versioned separately and did not change.

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
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .counters import CacheStats

_MAC_DOMAIN = b"ctxhook-entry-v1"

#: The entry format this code writes by default (see the module docstring).
FORMAT = 2
#: The formats this code can write: the current one and the one before (for a rolling upgrade).
WRITABLE_FORMATS = frozenset({1, 2})
#: The oldest format this code reads.
OLDEST_READABLE = 1
#: The oldest format whose reader reads what :data:`FORMAT` writes (``compat`` in the body).
COMPAT = 2
#: Body keys of the envelope format itself, not of the entry.
_FORMAT_KEYS = ("v", "compat")


class VersionedEntry(BaseModel):
    """Base of every cached value. Fields it does not know are ignored when reading (a later format
    may add some); the format number lives in the encoded body, not in the entry."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    #: The fields a format-1 reader knows (it refuses any other): what a format-1 body may carry.
    FORMAT1_FIELDS: ClassVar[frozenset[str]] = frozenset()


class SummaryEntry(VersionedEntry):
    """A summary of the atoms ``0..atoms_covered-1`` of a conversation (the span its digest names)."""

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

    FORMAT1_FIELDS: ClassVar[frozenset[str]] = frozenset(
        {
            "summary",
            "atoms_covered",
            "strategy",
            "model",
            "prompt_version",
            "tokens",
            "created_at",
            "provisional",
            "room",
        }
    )

    def suits(self, room: int) -> bool:
        """Whether this summary may stand, as it is, in a request of ``room``: one made for less
        than half that room (another model's window, a fallback deployment, another
        ``max_tokens``) says too little for it, and the span is condensed anew."""
        return self.room is None or 2 * self.room >= room


class AnalysisEntry(VersionedEntry):
    """A JSON-serialisable analysis result (counts, risk …), opaque to the cache."""

    payload: dict[str, Any]
    created_at: float

    FORMAT1_FIELDS: ClassVar[frozenset[str]] = frozenset({"payload", "created_at"})


E = TypeVar("E", bound=VersionedEntry)


def canonical_json(value: Any) -> bytes:
    """Deterministic JSON bytes: sorted keys, no whitespace, UTF-8, NaN/Infinity refused."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def mac(signing_key: str, type_name: str, context: str, body: bytes) -> str:
    """The entry's signature: HMAC-SHA256 under ``signing_key`` over the domain, the entry's type, its
    context (the key it is stored under) and its canonical body, hex."""
    msg = b"\n".join((_MAC_DOMAIN, type_name.encode("utf-8"), context.encode("utf-8"), body))
    return hmac.new(signing_key.encode("utf-8"), msg, hashlib.sha256).hexdigest()


def encode(entry: VersionedEntry, signing_key: str | None, *, context: str = "", fmt: int = FORMAT) -> bytes:
    """The envelope bytes of ``entry`` in entry format ``fmt``; signed when ``signing_key`` is set.

    Raises ``ValueError`` for a format this code cannot write and for values JSON cannot carry
    (e.g. an arbitrary object in a payload).
    """
    if fmt not in WRITABLE_FORMATS:
        raise ValueError(f"cache entry format {fmt!r} cannot be written: one of {sorted(WRITABLE_FORMATS)}")
    fields = entry.model_dump(mode="json")
    if fmt == 1:  # only what a format-1 reader knows: it refuses any other field
        body: dict[str, Any] = {"v": 1, **{k: v for k, v in fields.items() if k in type(entry).FORMAT1_FIELDS}}
    else:
        body = {"v": fmt, "compat": COMPAT, **fields}
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
    if not readable(body):
        return None, "version"
    try:
        return model_cls.model_validate({k: v for k, v in body.items() if k not in _FORMAT_KEYS}), None
    except (ValidationError, ValueError, TypeError, RecursionError):
        return None, "corrupt"


def readable(body: dict[str, Any]) -> bool:
    """Whether this code reads an entry body of its format: format 1, or any format from 2 on whose
    ``compat`` is at most :data:`FORMAT` (a later format that only added fields)."""
    v, compat = body.get("v"), body.get("compat")
    if isinstance(v, bool) or not isinstance(v, int) or v < OLDEST_READABLE:
        return False
    if v == 1:
        return True
    if isinstance(compat, bool) or not isinstance(compat, int):
        return False
    return 2 <= compat <= min(v, FORMAT)
