"""Create ``.venv`` with the project and its extras installed (only Python is needed).

Re-installs when pyproject.toml or constraints.txt change. Used by ``scripts/demo`` and
``scripts/test``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".ctx-installed"


def _fingerprint() -> str:
    h = hashlib.sha256()
    for name in ("pyproject.toml", "constraints.txt"):
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()


def ensure() -> Path:
    """The venv's bin directory, after installing what is missing."""
    if not (BIN / "python").exists():
        print("creating .venv …", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    want = _fingerprint()
    if not STAMP.exists() or STAMP.read_text() != want:
        print("installing litellm-ctx-hook with its proxy and dev extras (first run takes a few minutes) …", flush=True)
        pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
        subprocess.run([*pip, "-c", str(ROOT / "constraints.txt"), "-e", f"{ROOT}[proxy,dev]"], check=True, cwd=ROOT)
        STAMP.write_text(want)
    return BIN


def env() -> dict[str, str]:
    """The environment for tools run from the venv: offline LiteLLM, the venv first on PATH."""
    e = dict(os.environ)
    e.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    e["PATH"] = f"{BIN}{os.pathsep}{e.get('PATH', '')}"
    return e


def run(args: list[str]) -> int:
    return subprocess.run(args, cwd=ROOT, env=env()).returncode


if __name__ == "__main__":
    ensure()
    sys.exit(0)
