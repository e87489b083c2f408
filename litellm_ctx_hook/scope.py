"""Tenant scopes of cached summaries (``CONTEXT_CACHE_SCOPE``): raw API keys never appear."""

from __future__ import annotations

import hashlib

from .settings import CacheScope


def scope_for(scope: CacheScope, team_id: str | None, api_key: str | None) -> str:
    key = f"key-{hashlib.sha256(api_key.encode()).hexdigest()[:16]}" if api_key else "anon"
    if scope is CacheScope.GLOBAL:
        return "global"
    if scope is CacheScope.TEAM and team_id:
        return f"team-{team_id}"
    return key
