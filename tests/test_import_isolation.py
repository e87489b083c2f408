"""The pure core must not pull in Redis or the LiteLLM proxy (docs/architecture.md, "Pure core")."""

from __future__ import annotations

import subprocess
import sys

import pytest

PURE = [
    "litellm_ctx_hook.analysis.counting",
    "litellm_ctx_hook.analysis.risk",
    "litellm_ctx_hook.adapters",
    "litellm_ctx_hook.planning.atoms",
    "litellm_ctx_hook.planning.plan",
    "litellm_ctx_hook.planning.edits",
    "litellm_ctx_hook.planning.verify",
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
