"""Create ``.venv`` with the project and its extras installed from the lock (only Python is needed).

The tools come from ``requirements/dev.txt`` (every package pinned, with hashes), so a clean clone
gets the same ruff, mypy, pytest, redis-py and LiteLLM on any day; the project itself is installed
editable on top, without dependencies. Re-installs when pyproject.toml or the lock change, and then
removes what the lock no longer lists. Used by ``scripts/demo``, ``scripts/test`` and ``scripts/lock``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".ctx-installed"
LOCK = ROOT / "requirements" / "dev.txt"
PROJECT = "litellm-ctx-hook"
# Never removed by the sync: the installer itself.
_KEEP = {"pip", PROJECT}
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==", re.MULTILINE)


def _fingerprint() -> str:
    h = hashlib.sha256()
    for path in (ROOT / "pyproject.toml", LOCK):
        h.update(path.read_bytes())
    return h.hexdigest()


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pip() -> list[str]:
    return [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check"]


def _remove_unlocked() -> None:
    """Uninstall what an earlier lock installed and this one no longer lists."""
    locked = {_canonical(n) for n in _PIN.findall(LOCK.read_text())} | _KEEP
    listed = subprocess.run([*_pip(), "list", "--format=json"], check=True, capture_output=True, text=True, cwd=ROOT)
    extra = sorted(n for n in (_canonical(d["name"]) for d in json.loads(listed.stdout)) if n not in locked)
    if extra:
        print(f"removing what the lock no longer lists: {', '.join(extra)}", flush=True)
        subprocess.run([*_pip(), "uninstall", "-q", "-y", *extra], check=True, cwd=ROOT)


def ensure() -> Path:
    """The venv's bin directory, after installing what is missing."""
    if not (BIN / "python").exists():
        print("creating .venv …", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    want = _fingerprint()
    if not STAMP.exists() or STAMP.read_text() != want:
        lock = LOCK.relative_to(ROOT)
        print(f"installing {lock} and litellm-ctx-hook (the first run takes a few minutes) …", flush=True)
        # Two steps: pip checks every locked hash only when no requirement lacks one, and an
        # editable project has no file to hash. Its build uses the locked setuptools.
        subprocess.run([*_pip(), "install", "-q", "--require-hashes", "-r", str(LOCK)], check=True, cwd=ROOT)
        subprocess.run(
            [*_pip(), "install", "-q", "--no-deps", "--no-build-isolation", "-e", str(ROOT)], check=True, cwd=ROOT
        )
        _remove_unlocked()
        STAMP.write_text(want)
    return BIN


def env() -> dict[str, str]:
    """The environment for tools run from the venv: offline LiteLLM, the venv first on PATH."""
    e = dict(os.environ)
    e.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    return e


def run(args: list[str]) -> int:
    return run_env(args, env())


def run_env(args: list[str], environment: dict[str, str]) -> int:
    return subprocess.run(args, cwd=ROOT, env=environment).returncode


if __name__ == "__main__":
    ensure()
    sys.exit(0)
