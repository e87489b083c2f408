"""The test suite against the LiteLLM releases the plugin supports (``nox -s <session>``).

* ``pinned``: the lock, ``requirements/dev.txt`` (LiteLLM as pinned in ``constraints.txt`` with its
  ``proxy`` extra, every tool pinned; the full proxy end to end): ruff, mypy --strict, pytest — what
  ``python3 scripts/test`` runs in ``.venv``.
* ``newest``: the newest releases that ``pyproject.toml``'s ranges admit, LiteLLM and the tools, from
  the package index: mypy --strict and pytest, with a ``DeprecationWarning`` raised by a call from
  the plugin's own modules an error (pytest's ``filterwarnings`` in ``pyproject.toml``; in the proxy
  processes the tests start, ``PYTHONWARNINGS`` for the modules that call LiteLLM's router). When
  that release's ``proxy`` extra cannot be installed (since 1.110 it pins a separate
  ``litellm-proxy`` distribution and companions the index may not carry), the extra's other
  requirements are installed instead and the proxy runs from the ``litellm`` wheel's own
  ``litellm/proxy`` code; the session prints what it substituted.

Extra arguments go to pytest: ``nox -s newest -- -m "not e2e"``. Without them pytest runs with
``-m "not llm"`` (the real local model is left out).
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import nox
from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parent
nox.options.sessions = ["pinned", "newest"]
nox.options.reuse_existing_virtualenvs = True

# Distributions the proxy extra pins at the release's exact version that the index may not carry:
# ``litellm-proxy`` repeats the ``litellm/proxy`` package the ``litellm`` wheel already ships; the
# two others are the proxy's database migrations and enterprise hooks (neither used without a
# database), installed at the newest version the index has.
_PROXY_SPLIT = "litellm-proxy"
_COMPANIONS = ("litellm-proxy-extras", "litellm-enterprise")
LOCK = "requirements/dev.txt"
# The plugin's modules that call LiteLLM's router or proxy objects: a DeprecationWarning from their
# calls is an error in the proxy processes of `newest` (PYTHONWARNINGS takes exact module names).
_ROUTER_CALLERS = (
    "litellm_ctx_hook.analysis.limits",
    "litellm_ctx_hook.condensing.summarizer",
    "litellm_ctx_hook.proxy.hook",
)


def _pytest_args(session: nox.Session) -> list[str]:
    return list(session.posargs) or ["-m", "not llm"]


def _litellm_range() -> str:
    """The ``litellm`` requirement of ``pyproject.toml`` (e.g. ``litellm>=1.106.2,<1.111``)."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    return next(d for d in deps if Requirement(d).name == "litellm")


def _installed(session: nox.Session, code: str) -> str:
    out = session.run("python", "-c", code, silent=True, external=False)
    return str(out).strip()


@nox.session
def pinned(session: nox.Session) -> None:
    """The suite against the lock: the pinned LiteLLM with its proxy extra, the pinned tools."""
    session.install("--require-hashes", "-r", LOCK)
    session.install("--no-deps", "--no-build-isolation", "-e", ".")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    session.run("mypy")
    session.run("python", "-m", "pytest", *_pytest_args(session))


@nox.session
def newest(session: nox.Session) -> None:
    """The suite against the newest LiteLLM release in the supported range."""
    session.install("--upgrade", "-e", ".[dev]", _litellm_range())
    version = _installed(session, "import importlib.metadata as m; print(m.version('litellm'))")
    session.log(f"LiteLLM {version} (newest release admitted by {_litellm_range()!r})")
    _warn_if_newer_outside_range(session)
    try:
        session.install(f"litellm[proxy]=={version}", silent=True)
        session.log(f"litellm[proxy]=={version} installed as published")
    except nox.command.CommandFailed:
        raw = _installed(session, "import importlib.metadata as m, json; print(json.dumps(m.requires('litellm')))")
        reqs = _proxy_requirements(json.loads(raw))
        session.log(
            f"litellm[proxy]=={version} cannot be installed from this index; installing its other "
            f"requirements, without {_PROXY_SPLIT} (its code ships in the litellm wheel) and with "
            f"{', '.join(_COMPANIONS)} at the newest version available"
        )
        session.install(*reqs)
    session.run("mypy")
    session.env["PYTHONWARNINGS"] = ",".join(f"error::DeprecationWarning:{m}" for m in _ROUTER_CALLERS)
    session.run("python", "-m", "pytest", *_pytest_args(session))


def _warn_if_newer_outside_range(session: nox.Session) -> None:
    """Say so when the index has a release the range does not admit yet (time to test and widen it)."""
    try:
        out = str(session.run("python", "-m", "pip", "index", "versions", "litellm", silent=True))
    except nox.command.CommandFailed:
        return
    found = re.search(r"^litellm \(([^)]+)\)", out, re.MULTILINE)
    if found and Version(found.group(1)) not in Requirement(_litellm_range()).specifier:
        session.warn(f"LiteLLM {found.group(1)} is out: pyproject.toml admits {_litellm_range()!r}")


def _proxy_requirements(requires: list[str]) -> list[str]:
    """The requirements of LiteLLM's ``proxy`` extra for this interpreter, adapted as described above."""
    out: list[str] = []
    for text in requires:
        req = Requirement(text)
        if req.marker is None or not req.marker.evaluate({"extra": "proxy"}) or req.marker.evaluate({"extra": ""}):
            continue  # not the proxy extra, or not for this interpreter
        if req.name == _PROXY_SPLIT:
            continue
        out.append(req.name if req.name in _COMPANIONS else f"{req.name}{req.specifier}")
    return out
