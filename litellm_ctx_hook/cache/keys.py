"""Cache keys, tenant scopes and chained prefix digests (pure: no I/O, no Redis import).

Every key has the shape ``ctxhook:v1:{kind}:{scope}:{digest}`` (docs/architecture.md,
"Cache keys and entries"):

* ``kind`` — ``sum`` (summaries), ``ana`` (analysis results) or ``lock`` (single-flight locks);
* ``scope`` — the tenant the entry belongs to (:func:`scope_for`), so one tenant can neither read
  another's summaries nor learn from cache timing that another had a given conversation;
* ``digest`` — a hex hash of the content the entry describes (:func:`chain_digests`).

Raw API keys never appear in a key: they are replaced by a truncated SHA-256.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence

from ..conversation import Message
from ..errors import ContextHookError
from ..runtime.pacing import pace
from ..settings import CacheScope

PREFIX = "ctxhook:v1"
KIND_SUMMARY = "sum"
KIND_ANALYSIS = "ana"
KIND_LOCK = "lock"
KINDS = frozenset({KIND_SUMMARY, KIND_ANALYSIS, KIND_LOCK})
STATS_KEY = f"{PREFIX}:stats"  # one Redis hash of shared counters

DIGEST_BYTES = 32  # 256-bit chained digests → 64 hex characters
_CHAIN_PERSON = b"ctxhook-chain1"  # BLAKE2 personalisation: domain separation from other uses
_ATOM_PERSON = b"ctxhook-atom1"
_SAFE_PART = re.compile(r"[A-Za-z0-9_.\-]{1,128}")
_SAFE_TEAM_ID = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


class CacheKeyError(ContextHookError, ValueError):
    """A cache key part is empty or contains characters that would make keys ambiguous."""


def cache_key(kind: str, scope: str, digest: str) -> str:
    """``ctxhook:v1:{kind}:{scope}:{digest}``; each part must be a non-empty ``[A-Za-z0-9_.-]`` run."""
    for name, part in (("kind", kind), ("scope", scope), ("digest", digest)):
        if not _SAFE_PART.fullmatch(part):
            raise CacheKeyError(
                f"cache key {name} {part[:40]!r} must be 1-128 characters of [A-Za-z0-9_.-]; "
                "build scopes with scope_for() and digests with chain_digests()"
            )
    return f"{PREFIX}:{kind}:{scope}:{digest}"


def key_hash(api_key: str) -> str:
    """The 16-hex-digit SHA-256 prefix that stands for an API key in cache keys and logs."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()[:16]


def scope_for(scope: CacheScope, team_id: str | None, api_key: str | None) -> str:
    """The tenant scope string of a request.

    * ``team``: ``team-<id>`` when the request has a team, else ``key-<hash>``, else ``anon``;
    * ``key``: ``key-<hash>`` (``anon`` without a key);
    * ``global``: ``global`` (every tenant shares summaries: single-tenant deployments only).

    A team id outside ``[A-Za-z0-9_.-]{1,64}`` is hashed (``teamh-<hash>``) so that the key stays
    well formed; the distinct prefix means a hashed id can never equal a literal one.
    """
    if scope is CacheScope.GLOBAL:
        return "global"
    if scope is CacheScope.TEAM and team_id:
        if _SAFE_TEAM_ID.fullmatch(team_id):
            return f"team-{team_id}"
        return f"teamh-{key_hash(team_id)}"
    if api_key:
        return f"key-{key_hash(api_key)}"
    return "anon"


def chain_salt(strategy: str, model: str, prompt_version: str) -> str:
    """A salt for :func:`chain_digests` covering what makes a summary of the same span different."""
    return json.dumps([strategy, model, prompt_version], separators=(",", ":"), ensure_ascii=False)


def atom_digest(payload: bytes) -> bytes:
    """The BLAKE2b digest of one atom's canonical bytes."""
    return hashlib.blake2b(payload, digest_size=DIGEST_BYTES, person=_ATOM_PERSON).digest()


def chain_digests(atom_payloads: Sequence[bytes], salt: str) -> list[str]:
    """Chained prefix digests: ``out[i]`` identifies atoms ``0..i`` under ``salt``.

    ``h_-1 = blake2b(salt)`` and ``h_i = blake2b(h_{i-1} ‖ blake2b(payload_i))``, hex encoded.
    Changing any atom changes its digest and every later one; changing the salt (strategy,
    summariser model, prompt version) changes all of them.
    """
    h = hashlib.blake2b(salt.encode("utf-8"), digest_size=DIGEST_BYTES, person=_CHAIN_PERSON).digest()
    out: list[str] = []
    for payload in atom_payloads:
        h = hashlib.blake2b(h + atom_digest(payload), digest_size=DIGEST_BYTES, person=_CHAIN_PERSON).digest()
        out.append(h.hex())
    return out


def content_digest(messages: Iterable[Message]) -> bytes:
    """A digest of what a summary of ``messages`` depends on: roles, names and every part's kind,
    text, tool id and name and image reference. Stable across processes (cache keys are shared);
    length-prefixed fields, so no two different contents hash alike by concatenation."""
    h = hashlib.blake2b(digest_size=16)

    def put(value: str | None) -> None:
        data = b"\xff" if value is None else value.encode("utf-8", "surrogatepass")
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)

    for m in messages:
        pace()
        put(m.raw_role)
        put(m.name)
        for p in m.parts:
            put(p.kind.value)
            put(p.text)
            put(p.tool_id)
            put(p.tool_name)
            if p.image is not None:
                put(p.image.url or p.image.data)
                put(p.image.detail)
    return h.digest()
