"""Start a real ``litellm --config`` proxy process (for the demo and the end-to-end tests).

    with start_proxy({"model_list": [...], "litellm_settings": {...}}) as proxy:
        client = openai.OpenAI(base_url=proxy.base_url + "/v1", api_key=proxy.master_key)

The proxy runs offline (``LITELLM_LOCAL_MODEL_COST_MAP=True``), without a database, with a random
master key, and with the repository root on ``PYTHONPATH`` so ``litellm_ctx_hook`` imports.
A start takes 8-15 s on the 2-CPU development machine (see ``ProxyProcess.startup_s``), so test
modules should share one proxy (module-scoped fixture) where they can.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]  # the checkout (or site-packages) holding litellm_ctx_hook
START_TIMEOUT_S = 60.0
STOP_GRACE_S = 10.0


# alias -> LiteLLM model; "claude-sonnet" differs from its upstream model name, which shows alias resolution
DEFAULT_MODELS: Mapping[str, str] = {
    "gpt-4o-mini": "openai/gpt-4o-mini",
    "claude-sonnet": "anthropic/claude-sonnet-4-5-20250929",
    "summarizer": "openai/gpt-4o-mini",
}


def model_entry(
    alias: str,
    model: str,
    upstream_url: str,
    *,
    model_info: Mapping[str, Any] | None = None,
    **params: Any,
) -> dict[str, Any]:
    """One ``model_list`` entry served by the fake upstream.

    ``anthropic/...`` gets ``api_base: <upstream>`` (LiteLLM appends ``/v1/messages``); anything else
    (OpenAI-compatible) gets ``api_base: <upstream>/v1``.
    """
    api_base = upstream_url if model.startswith("anthropic/") else upstream_url + "/v1"
    entry: dict[str, Any] = {
        "model_name": alias,
        "litellm_params": {"model": model, "api_base": api_base, "api_key": "sk-fake", **params},
    }
    if model_info:
        entry["model_info"] = dict(model_info)
    return entry


def upstream_config(
    upstream_url: str,
    *,
    models: Mapping[str, str] | None = None,
    callbacks: list[str] | None = None,
    litellm_settings: Mapping[str, Any] | None = None,
    extra_models: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A proxy config whose models (``DEFAULT_MODELS`` unless given) all talk to the fake upstream."""
    model_list = [model_entry(alias, model, upstream_url) for alias, model in (models or DEFAULT_MODELS).items()]
    settings: dict[str, Any] = dict(litellm_settings or {})
    if callbacks:
        settings["callbacks"] = list(callbacks)
    return {"model_list": [*model_list, *(extra_models or [])], "litellm_settings": settings}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _litellm_command() -> list[str]:
    beside = Path(sys.executable).parent / "litellm"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("litellm")
    if found is None:
        raise RuntimeError("the `litellm` command is not installed (pip install 'litellm[proxy]')")
    return [found]


class ProxyStartError(RuntimeError):
    """The proxy did not become live; the message carries the end of its log."""


class ProxyProcess:
    """A running ``litellm`` proxy; stop it with :meth:`stop` or use it as a context manager."""

    def __init__(
        self,
        process: subprocess.Popen[bytes],
        *,
        base_url: str,
        master_key: str,
        config_path: Path,
        log_path: Path,
        workdir: tempfile.TemporaryDirectory[str],
    ) -> None:
        self.process = process
        self.base_url = base_url
        self.master_key = master_key
        self.config_path = config_path
        self.log_path = log_path
        self.startup_s = 0.0
        self._workdir = workdir

    @property
    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.master_key}"}

    def log_tail(self, lines: int = 50) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def is_live(self) -> bool:
        try:
            with urllib.request.urlopen(self.base_url + "/health/liveliness", timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def wait_live(self, timeout_s: float = START_TIMEOUT_S) -> None:
        started = time.monotonic()
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ProxyStartError(
                    f"litellm exited with code {self.process.returncode} before it was live; "
                    f"last lines of {self.log_path}:\n{self.log_tail()}"
                )
            if self.is_live():
                self.startup_s = time.monotonic() - started
                return
            time.sleep(0.2)
        tail = self.log_tail()
        self.stop()
        raise ProxyStartError(f"litellm was not live after {timeout_s:.0f} s; last lines of the log:\n{tail}")

    def stop(self) -> None:
        """SIGTERM the proxy's process group, SIGKILL it after 10 s; keeps the log until cleanup."""
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait(timeout=STOP_GRACE_S)

    def cleanup(self) -> None:
        """Stop, then remove the temporary directory (config and log)."""
        self.stop()
        self._workdir.cleanup()

    def _signal(self, sig: signal.Signals) -> None:
        # The proxy was started in its own session: its group id is its pid, and only what it spawned is in it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, sig)

    def __enter__(self) -> ProxyProcess:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()


def proxy_env(master_key: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The proxy's environment: ours, offline, no database, the repository importable, then ``env``."""
    base = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "DIRECT_URL")}
    pythonpath = [str(REPO_ROOT), *filter(None, base.get("PYTHONPATH", "").split(os.pathsep))]
    base.update(
        LITELLM_LOCAL_MODEL_COST_MAP="True",
        LITELLM_MASTER_KEY=master_key,
        PYTHONPATH=os.pathsep.join(pythonpath),
        DISABLE_SCHEMA_UPDATE="true",
        LITELLM_TELEMETRY="False",
        PYTHONUNBUFFERED="1",
    )
    base.update(env or {})
    return base


def start_proxy(
    config: Mapping[str, Any] | str | Path,
    env: Mapping[str, str] | None = None,
    *,
    port: int | None = None,
    files: Mapping[str, str | Path] | None = None,
    timeout_s: float = START_TIMEOUT_S,
    args: Sequence[str] = (),
) -> ProxyProcess:
    """Start ``litellm --config`` on 127.0.0.1 and wait until ``/health/liveliness`` answers.

    ``config``: a dict (written as JSON, which is valid YAML), YAML text (``str``), or a ``Path`` to
    an existing file (used where it is, so modules next to it resolve).
    ``files``: extra files copied (a ``Path``) or written (a ``str``) next to the generated config,
    e.g. a callback module, which LiteLLM looks for in the config file's directory first.
    ``env`` is applied last and overrides everything (``PYTHONPATH`` included).
    ``args``: more ``litellm`` options, e.g. ``["--num_workers", "2"]`` or ``["--run_gunicorn"]``.
    """
    workdir = tempfile.TemporaryDirectory(prefix="litellm-proxy-")
    root = Path(workdir.name)
    if isinstance(config, Path):
        config_path = config.resolve()
    else:
        config_path = root / "config.yaml"
        text = config if isinstance(config, str) else json.dumps(dict(config), indent=2)  # JSON is YAML
        config_path.write_text(text, encoding="utf-8")
    for name, content in (files or {}).items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copyfile(content, target)
        else:
            target.write_text(content, encoding="utf-8")
    master_key = "sk-test-" + secrets.token_hex(12)
    port = port or free_port()
    log_path = root / "proxy.log"
    cmd = [*_litellm_command(), "--config", str(config_path), "--port", str(port), "--host", "127.0.0.1", *args]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            cmd,
            cwd=root,
            env=proxy_env(master_key, env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    proxy = ProxyProcess(
        process,
        base_url=f"http://127.0.0.1:{port}",
        master_key=master_key,
        config_path=config_path,
        log_path=log_path,
        workdir=workdir,
    )
    try:
        proxy.wait_live(timeout_s)
    except BaseException:
        proxy.stop()
        raise
    return proxy
