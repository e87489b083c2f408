"""No module of the package or of ``bench/`` imports another module's private (``_name``) names:
neither ``from m import _x`` nor ``m._x`` on an imported module of the repository. What one module
offers another is public and documented; a leading underscore means "this module only"."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ("litellm_ctx_hook", "bench")
OWN = ("litellm_ctx_hook", "bench", "tests")  # the repository's own top-level packages


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _source(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    """The absolute name of the module ``node`` imports from."""
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _own(name: str) -> bool:
    return name.split(".")[0] in OWN


def offenders(path: Path, root: Path) -> list[str]:
    """Each place in the file at ``path`` that imports or reads another own module's private name."""
    module = _module_name(path, root)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    where = path.relative_to(root)
    found: list[str] = []
    modules: dict[str, str] = {}  # local name bound to a module of the repository -> its full name
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _source(node, module, path.name == "__init__.py")
            if not _own(source):
                continue
            for alias in node.names:
                if _private(alias.name) and source != module:
                    found.append(f"{where}:{node.lineno}: from {source} import {alias.name}")
                elif (root / Path(*source.split("."), alias.name)).with_suffix(".py").exists() or (
                    root / Path(*source.split("."), alias.name, "__init__.py")
                ).exists():
                    modules[alias.asname or alias.name] = f"{source}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if not _own(alias.name):
                    continue
                if any(_private(part) for part in alias.name.split(".")):
                    found.append(f"{where}:{node.lineno}: import {alias.name}")
                elif alias.asname:
                    modules[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in modules
            and modules[node.value.id] != module
            and _private(node.attr)
        ):
            found.append(f"{where}:{node.lineno}: {modules[node.value.id]}.{node.attr}")
    return found


def test_no_module_imports_another_modules_private_names() -> None:
    found = [o for top in CHECKED for path in sorted((ROOT / top).rglob("*.py")) for o in offenders(path, ROOT)]
    assert not found, "private names used outside their module:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from litellm_ctx_hook.cache.entries import _secret\n", "from litellm_ctx_hook.cache.entries import _secret"),
        ("from ..cache.entries import canonical_json, _secret\n", "from litellm_ctx_hook.cache.entries import _secret"),
        ("from ..cache import entries\nentries._secret(1)\n", "litellm_ctx_hook.cache.entries._secret"),
        ("import litellm_ctx_hook.cache.entries as e\ne._secret\n", "litellm_ctx_hook.cache.entries._secret"),
        ("from . import _hidden\n", "from litellm_ctx_hook.planning import _hidden"),
    ],
)
def test_the_check_finds_a_private_import(tmp_path: Path, source: str, expected: str) -> None:
    for package in ("litellm_ctx_hook", "litellm_ctx_hook/cache", "litellm_ctx_hook/planning"):
        (tmp_path / package).mkdir(parents=True, exist_ok=True)
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "litellm_ctx_hook/cache/entries.py").write_text("def _secret(x): return x\n")
    module = tmp_path / "litellm_ctx_hook/planning/user.py"
    module.write_text(source)
    found = offenders(module, tmp_path)
    assert len(found) == 1
    assert expected in found[0]


@pytest.mark.parametrize(
    "source",
    [
        "def _own(): pass\n_own()\n",  # its own private names
        "from typing import _GenericAlias\nimport os\nos._exit\n",  # other libraries' are their business
        "from ..cache.entries import canonical_json\nfrom .. import __version__\n",  # public and dunder names
    ],
)
def test_the_check_lets_public_and_own_names_pass(tmp_path: Path, source: str) -> None:
    for package in ("litellm_ctx_hook", "litellm_ctx_hook/cache", "litellm_ctx_hook/planning"):
        (tmp_path / package).mkdir(parents=True, exist_ok=True)
        (tmp_path / package / "__init__.py").write_text("")
    module = tmp_path / "litellm_ctx_hook/planning/user.py"
    module.write_text(source)
    assert offenders(module, tmp_path) == []
