"""The agent installer (pinned versions, cached outside the checkout) and the egress trap, without npm's registry."""

from __future__ import annotations

import os
import re
import socket
import stat
from pathlib import Path

import pytest

from litellm_ctx_hook.testing.agents import (
    CODEX,
    AgentUnavailable,
    EgressTrap,
    binary_path,
    install,
    installed,
)

FAKE_NPM = """#!/bin/sh
# a stand-in for npm: records the call, "installs" a binary that prints the version it is given
echo "$@" >> "{calls}"
for arg in "$@"; do prefix_next=$prev; prev=$arg; [ "$prefix_next" = "--prefix" ] && prefix=$arg; spec=$arg; done
mkdir -p "$prefix/node_modules/.bin"
printf '#!/bin/sh\\necho "codex-cli {version}"\\n' > "$prefix/node_modules/.bin/codex"
chmod +x "$prefix/node_modules/.bin/codex"
"""


def fake_npm(bin_dir: Path, calls: Path, version: str) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    npm = bin_dir / "npm"
    npm.write_text(FAKE_NPM.format(calls=calls, version=version))
    npm.chmod(npm.stat().st_mode | stat.S_IEXEC)


def test_without_npm_the_client_is_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(AgentUnavailable, match="npm is not installed"):
        install(CODEX, tmp_path / "cache")


def test_installs_once_then_reuses_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = tmp_path / "calls"
    fake_npm(tmp_path / "bin", calls, CODEX.version)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin")
    cache = tmp_path / "cache"
    first = install(CODEX, cache)
    assert first == binary_path(CODEX, cache) and installed(CODEX, cache)
    assert f"@openai/codex@{CODEX.version}" in calls.read_text()
    assert install(CODEX, cache) == first
    assert len(calls.read_text().splitlines()) == 1  # the second call found it installed
    assert [p.name for p in cache.iterdir() if p.name.startswith(".install-")] == []


def test_a_wrong_version_is_not_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_npm(tmp_path / "bin", tmp_path / "calls", "0.0.1")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin")
    with pytest.raises(AgentUnavailable, match=re.escape(f"expected {CODEX.version}")):
        install(CODEX, tmp_path / "cache")
    assert not installed(CODEX, tmp_path / "cache")


def test_the_egress_trap_records_and_refuses() -> None:
    with EgressTrap() as trap:
        with socket.create_connection(("127.0.0.1", trap.port), timeout=5) as conn:
            conn.sendall(b"CONNECT telemetry.example.com:443 HTTP/1.1\r\nHost: telemetry.example.com\r\n\r\n")
            assert conn.recv(100).startswith(b"HTTP/1.1 403")
        env = trap.env()
    assert trap.attempts == ["CONNECT telemetry.example.com:443 HTTP/1.1"]
    assert env["HTTPS_PROXY"] == trap.url and "127.0.0.1" in env["NO_PROXY"]
