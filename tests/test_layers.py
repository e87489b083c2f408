"""The package's layers hold: ``lint-imports`` keeps the contracts of ``.importlinter`` (each group
imports only the groups below it, no import cycle inside a package; docs/architecture.md, "Layers")."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("importlinter", reason="import-linter is not installed (it is in the dev extra)")

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / ".importlinter"


def _lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the package under ``root``, with the repository's contracts."""
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p)}
    return subprocess.run(
        [sys.executable, "-c", code, "--no-cache", "--config", str(CONFIG)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_package_keeps_its_layers() -> None:
    out = _lint_imports(ROOT)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 broken" in out.stdout


@pytest.mark.parametrize(
    ("module", "line", "expected"),
    [
        # the runtime group reaching up into the engine
        ("runtime/logs.py", "from ..engine import engine as _upward  # noqa: F401", "is not allowed to import"),
        # a type-only import upwards counts as much as a run-time one
        (
            "analysis/risk.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..planning import steps  # noqa: F401",
            "is not allowed to import",
        ),
        # two independent groups on one layer
        ("cache/keys.py", "from ..adapters import base as _sideways  # noqa: F401", "is not allowed to import"),
        # a cycle inside one group
        ("planning/atoms.py", "from . import tiers as _cycle  # noqa: F401", "No cycles are allowed"),
    ],
)
def test_the_contract_catches_a_violation(tmp_path: Path, module: str, line: str, expected: str) -> None:
    copy = tmp_path / "litellm_ctx_hook"
    shutil.copytree(ROOT / "litellm_ctx_hook", copy, ignore=shutil.ignore_patterns("__pycache__"))
    target = copy / module
    target.write_text(target.read_text() + "\n" + line + "\n")
    out = _lint_imports(tmp_path)
    assert out.returncode != 0, out.stdout
    assert expected in out.stdout, out.stdout


def test_a_new_group_must_be_placed(tmp_path: Path) -> None:
    """The layers contract is exhaustive: a subpackage it does not list fails it."""
    copy = tmp_path / "litellm_ctx_hook"
    shutil.copytree(ROOT / "litellm_ctx_hook", copy, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "unplaced").mkdir()
    (copy / "unplaced" / "__init__.py").write_text("")
    out = _lint_imports(tmp_path)
    assert out.returncode != 0, out.stdout
    assert "unplaced" in out.stdout + out.stderr
