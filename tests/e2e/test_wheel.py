"""The built wheel works on its own: built from a copy of the repository, installed (not the source
tree) into a new virtual environment, and loaded by ``litellm --config``, it manages a request.

The new environment is made without ``--system-site-packages`` and gets only the wheel (``--no-deps``);
the plugin's dependencies (LiteLLM and its proxy extra, tiktoken, redis, ...) come from the test's own
environment through a ``.pth`` line naming its site-packages, so nothing is downloaded but the
build backend. A ``.pth`` path line adds that directory only: an editable install of the plugin
there (a finder run by its own ``.pth``) stays inactive, and the environment's own site-packages,
holding the wheel, comes first. The test checks that ``litellm_ctx_hook`` imports from the new
environment before it starts the proxy.
"""

from __future__ import annotations

import json
import secrets
import shutil
import site
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
from e2e.proxy import ProxyProcess, free_port, model_entry, proxy_env, upstream_config

from litellm_ctx_hook.adapters import adapter_for
from litellm_ctx_hook.analysis.counting import TokenCounter
from litellm_ctx_hook.conversation import Format
from litellm_ctx_hook.settings import load_settings
from litellm_ctx_hook.testing.fake_upstream import FakeUpstream, is_summarizer_call
from litellm_ctx_hook.testing.session import generate_session

ROOT = Path(__file__).resolve().parents[2]
WINDOW = 8_000
OUTPUT = 512
# what a copy of the repository leaves out: caches, environments, earlier builds
NOT_SOURCE = shutil.ignore_patterns(
    ".git",
    ".venv",
    ".nox",
    "__pycache__",
    "*.egg-info",
    "build",
    "dist",
    "out",
    ".*_cache",
    ".hypothesis",
)
LAUNCHER = """#!{python}
import sys
from litellm import run_server
sys.exit(run_server())
"""


@dataclass
class Installed:
    python: Path
    bin: Path
    site_packages: Path
    env: dict[str, str]  # the proxy's environment: no PYTHONPATH, so only installed code imports
    workdir: Path


def _run(cmd: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)
    assert out.returncode == 0, f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(work / "dist"), f"{source}"])
    wheels = sorted((work / "dist").glob("litellm_ctx_hook-*.whl"))
    assert len(wheels) == 1, wheels

    venv = work / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--quiet", str(wheels[0])])
    site_packages = Path(
        _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    )
    shared = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (site_packages / "shared_dependencies.pth").write_text("\n".join(shared) + "\n")
    # the `litellm` command of the test's environment, run by the new environment's interpreter
    installed_command = Path(sys.executable).parent / "litellm"
    if installed_command.is_file():
        body = installed_command.read_text().split("\n", 1)[1]
        script = f"#!{python}\n{body}"
    else:
        script = LAUNCHER.format(python=python)
    launcher = venv / "bin" / "litellm"
    launcher.write_text(script)
    launcher.chmod(0o755)

    env = proxy_env("unused")
    env.pop("PYTHONPATH", None)
    env.pop("LITELLM_MASTER_KEY", None)
    return Installed(python=python, bin=venv / "bin", site_packages=site_packages, env=env, workdir=work)


def test_the_wheel_holds_the_package_and_not_the_source_tree(installed: Installed) -> None:
    code = "import litellm, litellm_ctx_hook; print(litellm_ctx_hook.__file__)"
    where = Path(_run([str(installed.python), "-c", code], cwd=installed.workdir, env=installed.env).stdout.strip())
    assert installed.site_packages in where.parents, where
    assert ROOT not in where.parents
    # the harness ships with the package (the demo uses it); the CLI's entry point is installed
    assert (installed.site_packages / "litellm_ctx_hook" / "testing" / "fake_upstream.py").is_file()
    assert (installed.site_packages / "litellm_ctx_hook" / "py.typed").is_file()
    help_text = _run([str(installed.bin / "litellm-ctx"), "--help"], cwd=installed.workdir, env=installed.env).stdout
    assert "demo" in help_text


@pytest.fixture(scope="module")
def proxy(installed: Installed) -> Iterator[tuple[ProxyProcess, FakeUpstream]]:
    with FakeUpstream() as upstream:
        config = upstream_config(
            upstream.url,
            models={"gpt-4o-mini": "openai/gpt-4o-mini"},
            callbacks=["litellm_ctx_hook.proxy_handler_instance"],
            extra_models=[
                model_entry("small", "openai/gpt-4o-mini", upstream.url, model_info={"max_input_tokens": WINDOW})
            ],
        )
        workdir = tempfile.TemporaryDirectory(prefix="litellm-wheel-")
        config_path = Path(workdir.name) / "config.yaml"
        config_path.write_text(json.dumps(config), encoding="utf-8")
        master_key = "sk-test-" + secrets.token_hex(12)
        port = free_port()
        log_path = Path(workdir.name) / "proxy.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    str(installed.bin / "litellm"),
                    "--config",
                    str(config_path),
                    "--port",
                    str(port),
                    "--host",
                    "127.0.0.1",
                ],
                cwd=workdir.name,
                env={**installed.env, "LITELLM_MASTER_KEY": master_key},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        running = ProxyProcess(
            process,
            base_url=f"http://127.0.0.1:{port}",
            master_key=master_key,
            config_path=config_path,
            log_path=log_path,
            workdir=workdir,
        )
        try:
            running.wait_live()
            yield running, upstream
        finally:
            running.cleanup()


def test_the_installed_plugin_manages_a_request(proxy: tuple[ProxyProcess, FakeUpstream]) -> None:
    running, upstream = proxy
    messages = generate_session(turns=20)["messages"]
    client = openai.OpenAI(base_url=running.base_url + "/v1", api_key=running.master_key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="small", messages=messages, max_tokens=OUTPUT)
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-ctx-risk-level"] in {"WARNING", "CRITICAL", "OVERFLOW"}, running.log_tail()
    assert int(raw.headers["x-ctx-tokens-after"]) < int(raw.headers["x-ctx-tokens-before"])
    received = [r.body for r in upstream.requests_to("/chat/completions") if not is_summarizer_call(r.body)][-1]
    got = adapter_for(Format.OPENAI).parse(received)
    assert TokenCounter(load_settings()).count(got, "gpt-4o-mini").total <= WINDOW - OUTPUT
    assert received["messages"][0] == messages[0]  # the system prompt, byte for byte
    assert received["messages"][-1] == messages[-1]  # the newest turn
