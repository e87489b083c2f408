"""The README's first command: the demo, short mode, offline (a real proxy and a fake upstream)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_demo_short_runs_offline() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "litellm_ctx_hook.cli", "demo", "--short"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "requests" in done.stdout and "managed" in done.stdout
    assert "OVERFLOW" in done.stdout or "CRITICAL" in done.stdout or "WARNING" in done.stdout
