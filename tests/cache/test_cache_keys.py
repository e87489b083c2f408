"""Cache keys, tenant scopes and chained prefix digests."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from litellm_ctx_hook.cache.keys import (
    CacheKeyError,
    cache_key,
    chain_digests,
    chain_salt,
    key_hash,
    scope_for,
)
from litellm_ctx_hook.errors import ContextHookError
from litellm_ctx_hook.settings import CacheScope

SALT = chain_salt("conversation_summary", "summarizer", "p1")
payloads = st.lists(st.binary(max_size=64), min_size=1, max_size=12)


def test_cache_key_layout() -> None:
    assert cache_key("sum", "team-a", "ab12") == "ctxhook:v1:sum:team-a:ab12"


@pytest.mark.parametrize(
    ("kind", "scope", "digest"),
    [("", "team-a", "ab"), ("sum", "team:a", "ab"), ("sum", "team-a", "a b"), ("sum", "t", "x" * 200)],
)
def test_cache_key_rejects_ambiguous_parts(kind: str, scope: str, digest: str) -> None:
    with pytest.raises(CacheKeyError) as err:
        cache_key(kind, scope, digest)
    assert isinstance(err.value, ContextHookError)


def test_team_scope_prefers_team_then_key_then_anon() -> None:
    assert scope_for(CacheScope.TEAM, "acme", "sk-secret") == "team-acme"
    assert scope_for(CacheScope.TEAM, None, "sk-secret") == "key-" + hashlib.sha256(b"sk-secret").hexdigest()[:16]
    assert scope_for(CacheScope.TEAM, None, None) == "anon"


def test_key_and_global_scopes() -> None:
    assert scope_for(CacheScope.KEY, "acme", "sk-secret") == f"key-{key_hash('sk-secret')}"
    assert scope_for(CacheScope.KEY, "acme", None) == "anon"
    assert scope_for(CacheScope.GLOBAL, "acme", "sk-secret") == "global"


def test_unusual_team_ids_are_hashed_and_never_collide_with_literal_ones() -> None:
    odd = scope_for(CacheScope.TEAM, "team with spaces:and colons", None)
    assert re.fullmatch(r"teamh-[0-9a-f]{16}", odd)
    literal = scope_for(CacheScope.TEAM, odd.removeprefix("teamh-"), None)
    assert literal != odd
    cache_key("sum", odd, "ab")  # well formed


@given(st.text(max_size=80).map(lambda s: "sk-" + s))
def test_raw_api_keys_never_appear_in_scopes(api_key: str) -> None:
    for mode in CacheScope:
        scope = scope_for(mode, None, api_key)
        assert api_key not in scope
        assert "sk-" not in cache_key("sum", scope, "ab")


@given(payloads)
def test_digests_are_hex_one_per_atom_and_deterministic(atoms: list[bytes]) -> None:
    out = chain_digests(atoms, SALT)
    assert len(out) == len(atoms)
    assert all(re.fullmatch(r"[0-9a-f]{64}", d) for d in out)
    assert out == chain_digests(atoms, SALT)
    assert len(set(out)) == len(out)


@given(payloads, st.lists(st.binary(max_size=64), max_size=5))
def test_growing_conversation_keeps_its_prefix_digests(atoms: list[bytes], more: list[bytes]) -> None:
    assert chain_digests(atoms + more, SALT)[: len(atoms)] == chain_digests(atoms, SALT)


@given(payloads, st.data())
def test_changing_one_atom_changes_it_and_every_later_digest(atoms: list[bytes], data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(atoms) - 1))
    changed = list(atoms)
    changed[i] = atoms[i] + b"!"
    a, b = chain_digests(atoms, SALT), chain_digests(changed, SALT)
    assert a[:i] == b[:i]
    assert all(x != y for x, y in zip(a[i:], b[i:], strict=True))


@pytest.mark.parametrize(
    "salt",
    [
        chain_salt("key_point_extraction", "summarizer", "p1"),
        chain_salt("conversation_summary", "other-model", "p1"),
        chain_salt("conversation_summary", "summarizer", "p2"),
    ],
)
def test_any_salt_change_changes_every_digest(salt: str) -> None:
    atoms = [b"system", b"user: fix build", b"assistant: done"]
    assert all(x != y for x, y in zip(chain_digests(atoms, SALT), chain_digests(atoms, salt), strict=True))


def test_atom_boundaries_matter() -> None:
    assert chain_digests([b"ab", b"c"], SALT)[-1] != chain_digests([b"a", b"bc"], SALT)[-1]


def test_salt_encoding_is_unambiguous() -> None:
    assert chain_salt("a,b", "c", "d") != chain_salt("a", "b,c", "d")


def test_keys_module_is_pure() -> None:
    code = (
        "import sys, litellm_ctx_hook.cache.keys, litellm_ctx_hook.cache.entries\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('redis', 'litellm')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cache_package_never_imports_litellm() -> None:
    code = (
        "import sys, litellm_ctx_hook.cache as c\n"
        "c.SummaryCache, c.RedisStore\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'litellm'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
