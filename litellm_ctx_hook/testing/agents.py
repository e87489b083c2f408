"""Real agent CLIs from the npm registry, installed once at pinned versions and run headless.

    binary = install(CLAUDE_CODE)              # first use: npm install into the cache, then reused
    run = run_agent(CLAUDE_CODE, binary, AgentTarget(proxy_url, key, "claude-72k", 72_000), workdir, task)

The cache lives outside any checkout (``$CTX_AGENTS_CACHE``, default
``~/.cache/litellm-ctx-hook/agents``), one directory per package and version, so fresh clones reuse
it. Each run gets its own home and configuration directories, talks to the proxy only, and has
everything that phones home switched off: each client's own settings (see ``QUIET_ENV`` and the
configuration files written per client) and, as a net, ``HTTP(S)_PROXY`` pointing at an
:class:`EgressTrap` on loopback that records any attempt to reach another host and refuses it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

INSTALL_TIMEOUT_S = 900.0
COMPLETE_MARK = ".installed"


@dataclass(frozen=True, slots=True)
class Agent:
    name: str
    package: str
    version: str
    command: str  # the package's binary in node_modules/.bin
    route: str  # the proxy route it speaks


CLAUDE_CODE = Agent("claude-code", "@anthropic-ai/claude-code", "2.1.332", "claude", "/v1/messages")
CODEX = Agent("codex", "@openai/codex", "0.171.0", "codex", "/v1/responses")
OPENCODE = Agent("opencode", "opencode-ai", "1.18.33", "opencode", "/v1/chat/completions")
AGENTS = (CLAUDE_CODE, CODEX, OPENCODE)

#: Environment that stops each client from calling anything but the proxy.
QUIET_ENV: Mapping[str, Mapping[str, str]] = {
    CLAUDE_CODE.name: {
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_UPDATES": "1",
        "DISABLE_GROWTHBOOK": "1",
        "DISABLE_BUG_COMMAND": "1",
        "DISABLE_COST_WARNINGS": "1",
        "DISABLE_INSTALLATION_CHECKS": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY": "1",
        "CLAUDE_CODE_DISABLE_FEATURE_FLAGS": "1",
        "CLAUDE_CODE_DISABLE_OFFICIAL_MARKETPLACE_AUTOINSTALL": "1",
        "CLAUDE_CODE_IDE_SKIP_AUTO_INSTALL": "1",
    },
    CODEX.name: {},  # config.toml (analytics, feedback, otel, update check): see _codex
    OPENCODE.name: {
        "OPENCODE_DISABLE_AUTOUPDATE": "1",
        "OPENCODE_DISABLE_MODELS_FETCH": "1",
        "OPENCODE_DISABLE_SHARE": "1",
        "OPENCODE_DISABLE_LSP_DOWNLOAD": "1",
        "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
        "OPENCODE_DISABLE_CLAUDE_CODE": "1",
        "OPENCODE_DISABLE_EXTERNAL_SKILLS": "1",
        "OPENCODE_DISABLE_AUTOCOMPACT": "1",
        "OPENCODE_DISABLE_PROJECT_CONFIG": "1",
    },
}


class AgentUnavailable(RuntimeError):
    """The client cannot be installed or run here (no npm, the registry unreachable, a failed install)."""


# --- install ----------------------------------------------------------------------------------------


def cache_root() -> Path:
    configured = os.environ.get("CTX_AGENTS_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "litellm-ctx-hook" / "agents"


def install_dir(agent: Agent, root: Path | None = None) -> Path:
    slug = agent.package.lstrip("@").replace("/", "-")
    return (root or cache_root()) / f"{slug}-{agent.version}"


def binary_path(agent: Agent, root: Path | None = None) -> Path:
    return install_dir(agent, root) / "node_modules" / ".bin" / agent.command


def installed(agent: Agent, root: Path | None = None) -> bool:
    return (install_dir(agent, root) / COMPLETE_MARK).exists() and binary_path(agent, root).exists()


@contextlib.contextmanager
def _locked(root: Path) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with (root / ".lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def install(agent: Agent, root: Path | None = None) -> Path:
    """The agent's binary, installed with npm at its pinned version on first use (then reused)."""
    root = root or cache_root()
    if installed(agent, root):
        return binary_path(agent, root)
    npm = shutil.which("npm")
    if npm is None:
        raise AgentUnavailable(f"npm is not installed: cannot install {agent.package}@{agent.version}")
    with _locked(root):
        if installed(agent, root):
            return binary_path(agent, root)
        staging = Path(tempfile.mkdtemp(prefix=".install-", dir=root))
        try:
            command = [npm, "install", "--no-audit", "--no-fund", "--no-save", "--prefix", str(staging)]
            env = {**os.environ, "npm_config_update_notifier": "false", "npm_config_loglevel": "error"}
            try:
                done = subprocess.run(
                    [*command, f"{agent.package}@{agent.version}"],
                    capture_output=True,
                    text=True,
                    env=env,
                    timeout=INSTALL_TIMEOUT_S,
                    check=False,
                )
            except subprocess.TimeoutExpired as exc:
                raise AgentUnavailable(
                    f"npm install {agent.package}@{agent.version} took over {exc.timeout} s"
                ) from exc
            if done.returncode != 0:
                raise AgentUnavailable(
                    f"npm install {agent.package}@{agent.version} failed ({done.returncode}): {done.stderr[-2000:]}"
                )
            built = staging / "node_modules" / ".bin" / agent.command
            version = _version(built)
            if agent.version not in version:
                raise AgentUnavailable(f"{built} --version said {version!r}, expected {agent.version}")
            target = install_dir(agent, root)
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
            (target / COMPLETE_MARK).write_text(version + "\n", encoding="utf-8")
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return binary_path(agent, root)


def _version(binary: Path) -> str:
    home = tempfile.mkdtemp(prefix="agent-version-")
    try:
        done = subprocess.run(
            [str(binary), "--version"],
            capture_output=True,
            text=True,
            env={"PATH": os.environ.get("PATH", ""), "HOME": home, "CODEX_HOME": home},
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise AgentUnavailable(f"{binary} --version failed: {exc}") from exc
    finally:
        shutil.rmtree(home, ignore_errors=True)
    if done.returncode != 0:
        raise AgentUnavailable(f"{binary} --version exited {done.returncode}: {(done.stderr or done.stdout)[-1000:]}")
    return done.stdout.strip()


# --- the egress trap ----------------------------------------------------------------------------------


class EgressTrap:
    """An HTTP proxy on loopback that refuses every request and records what was asked for.

    Clients honour ``HTTPS_PROXY``; anything they try to reach beyond ``NO_PROXY`` (loopback) lands
    here, as ``CONNECT host:443`` or ``GET http://host/...``, and is answered 403.
    """

    def __init__(self) -> None:
        self.attempts: list[str] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port: int = self._sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="egress-trap", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            with conn:
                conn.settimeout(2)
                data = b""
                with contextlib.suppress(OSError):
                    while b"\n" not in data and len(data) < 8192:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                line = data.split(b"\r\n", 1)[0].decode("latin-1").strip()
                with self._lock:
                    self.attempts.append(line or "(empty)")
                with contextlib.suppress(OSError):
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    def __enter__(self) -> EgressTrap:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()

    def env(self) -> dict[str, str]:
        url = self.url
        names = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
        env = {n: url for n in names} | {n.lower(): url for n in names}
        return env | {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


# --- running a session ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentTarget:
    """Where the client sends its model calls: the proxy, its key, the model alias and its window."""

    base_url: str  # the proxy, without /v1
    api_key: str
    model: str
    window: int


@dataclass(frozen=True, slots=True)
class AgentRun:
    exit_code: int | None  # None: killed at the timeout
    stdout: str
    stderr: str
    wall_s: float
    egress: tuple[str, ...]  # requests the egress trap refused (should be none)

    def tail(self, chars: int = 3000) -> str:
        return f"--- stdout ---\n{self.stdout[-chars:]}\n--- stderr ---\n{self.stderr[-chars:]}"


def _claude_code(
    binary: Path, target: AgentTarget, home: Path, task: str, max_turns: int
) -> tuple[list[str], dict[str, str]]:
    config = home / ".claude"
    config.mkdir(parents=True, exist_ok=True)
    env = {
        "ANTHROPIC_BASE_URL": target.base_url,
        "ANTHROPIC_API_KEY": target.api_key,
        "ANTHROPIC_MODEL": target.model,
        "ANTHROPIC_SMALL_FAST_MODEL": target.model,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": target.model,
        "ANTHROPIC_DEFAULT_SONNET_MODEL": target.model,
        "ANTHROPIC_DEFAULT_OPUS_MODEL": target.model,
        "CLAUDE_CONFIG_DIR": str(config),
    }
    argv = [
        str(binary),
        "-p",
        task,
        "--model",
        target.model,
        "--max-turns",
        str(max_turns),
        "--allowedTools",
        "Read",
        "--strict-mcp-config",
        "--mcp-config",
        json.dumps({"mcpServers": {}}),
    ]
    return argv, env


def _codex(
    binary: Path, target: AgentTarget, home: Path, task: str, max_turns: int
) -> tuple[list[str], dict[str, str]]:
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    (codex_home / "config.toml").write_text(
        "\n".join(
            [
                f"model = {json.dumps(target.model)}",
                'model_provider = "ctxproxy"',
                'approval_policy = "never"',
                'sandbox_mode = "danger-full-access"',
                "check_for_update_on_startup = false",
                "tool_output_token_limit = 30000",
                "",
                "[features]",
                "plugins = false",
                "",
                "[analytics]",
                "enabled = false",
                "",
                "[feedback]",
                "enabled = false",
                "",
                "[otel]",
                'exporter = "none"',
                'trace_exporter = "none"',
                'metrics_exporter = "none"',
                "log_user_prompt = false",
                "",
                "[model_providers.ctxproxy]",
                'name = "litellm proxy"',
                f"base_url = {json.dumps(target.base_url + '/v1')}",
                'env_key = "CTX_PROXY_API_KEY"',
                'wire_api = "responses"',
                "request_max_retries = 0",
                "stream_max_retries = 0",
                "",
            ]
        ),
        encoding="utf-8",
    )
    env = {"CODEX_HOME": str(codex_home), "CTX_PROXY_API_KEY": target.api_key}
    argv = [
        str(binary),
        "exec",
        "--skip-git-repo-check",
        "--dangerously-bypass-approvals-and-sandbox",
        task,
    ]
    return argv, env


def _opencode(
    binary: Path, target: AgentTarget, home: Path, task: str, max_turns: int
) -> tuple[list[str], dict[str, str]]:
    config = {
        "$schema": "https://opencode.ai/config.json",
        "autoupdate": False,
        "share": "disabled",
        "model": f"ctxproxy/{target.model}",
        "small_model": f"ctxproxy/{target.model}",
        "permission": {"edit": "allow", "bash": "allow", "webfetch": "deny"},
        "lsp": False,
        "formatter": False,
        "mcp": {},
        "plugin": [],
        "provider": {
            "ctxproxy": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "litellm proxy",
                "options": {"baseURL": target.base_url + "/v1", "apiKey": target.api_key},
                "models": {
                    target.model: {"name": target.model, "limit": {"context": target.window, "output": 4096}},
                },
            }
        },
    }
    path = home / "opencode.json"
    path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    # opencode installs its plugin package into each config directory from the npm registry at start,
    # unless node_modules exists and the lock file already lists it: say it does (no plugin is used).
    config_dir = home / ".config" / "opencode"
    (config_dir / "node_modules").mkdir(parents=True, exist_ok=True)
    lock = {"lockfileVersion": 3, "packages": {"": {"dependencies": {"@opencode-ai/plugin": "*"}}}}
    (config_dir / "package-lock.json").write_text(json.dumps(lock), encoding="utf-8")
    env = {
        "OPENCODE_CONFIG": str(path),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "XDG_DATA_HOME": str(home / ".local" / "share"),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "XDG_STATE_HOME": str(home / ".local" / "state"),
    }
    argv = [str(binary), "run", "--model", f"ctxproxy/{target.model}", task]
    return argv, env


_SETUP = {CLAUDE_CODE.name: _claude_code, CODEX.name: _codex, OPENCODE.name: _opencode}


def run_agent(
    agent: Agent,
    binary: Path,
    target: AgentTarget,
    workdir: Path,
    task: str,
    *,
    home: Path,
    max_turns: int = 100,
    timeout_s: float = 600.0,
) -> AgentRun:
    """Run one headless session of ``agent`` in ``workdir`` (its home: ``home``) and wait for it.

    ``max_turns`` bounds Claude Code's turns (``--max-turns``); Codex and opencode have no such option.
    At ``timeout_s`` the client's process group is killed (``exit_code`` None).
    """
    home.mkdir(parents=True, exist_ok=True)
    with EgressTrap() as trap:
        argv, client_env = _SETUP[agent.name](binary, target, home, task, max_turns)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "TMPDIR": str(home),
            "LANG": "C.UTF-8",
            "TERM": "dumb",
            "NO_COLOR": "1",
            "CI": "true",
            **trap.env(),
            **QUIET_ENV[agent.name],
            **client_env,
        }
        started = time.monotonic()
        process = subprocess.Popen(
            argv,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=timeout_s)
            code: int | None = process.returncode
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 9)
            stdout, stderr = process.communicate()
            code = None
        wall = time.monotonic() - started
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, 9)  # anything it left running
    return AgentRun(code, stdout, stderr, wall, tuple(trap.attempts))
