"""The pure core must not pull in Redis or the LiteLLM proxy (DESIGN §10)."""

from __future__ import annotations

import subprocess
import sys

import pytest

PURE = [
    "litellm_ctx_hook.counting",
    "litellm_ctx_hook.risk",
    "litellm_ctx_hook.adapters",
    "litellm_ctx_hook.atoms",
    "litellm_ctx_hook.plan",
    "litellm_ctx_hook.edits",
    "litellm_ctx_hook.verify",
]


@pytest.mark.parametrize("module", PURE)
def test_pure_module_imports_no_io(module: str) -> None:
    code = (
        f"import sys, {module}\n"
        "bad = sorted(m for m in sys.modules if m in ('redis', 'litellm') or m.startswith(('redis.', 'litellm.')))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"{module} imported {out.stdout.strip()}"
