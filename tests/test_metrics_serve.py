"""``CONTEXT_METRICS_PORT`` with several workers: the sum over workers' files is served by the first
worker to bind the port, the others leave it; one process that cannot bind fails loudly."""

from __future__ import annotations

import logging
import socket
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from litellm_ctx_hook.proxy.metrics import serve


def _taken_port() -> tuple[socket.socket, int]:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("", 0))  # as start_http_server binds: every address
    s.listen()
    return s, int(s.getsockname()[1])


def test_a_second_worker_leaves_the_port_to_the_first(tmp_path: Path) -> None:
    sock, port = _taken_port()
    try:
        assert serve(port, multiproc_dir=str(tmp_path), workers=2) is False
    finally:
        sock.close()


def test_a_single_process_that_cannot_bind_fails_at_start() -> None:
    sock, port = _taken_port()
    try:
        with pytest.raises(OSError, match="in use"):
            serve(port)
    finally:
        sock.close()


def test_workers_without_a_multiprocess_directory_are_warned(caplog: pytest.LogCaptureFixture) -> None:
    sock, port = _taken_port()
    try:
        with caplog.at_level(logging.WARNING, logger="litellm_ctx_hook"):
            serve(port, workers=3)
    finally:
        sock.close()
    assert "PROMETHEUS_MULTIPROC_DIR" in caplog.text


def test_the_multiprocess_directory_is_what_is_served(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    assert serve(port, multiproc_dir=str(tmp_path), workers=2) is True
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        names = {f.name for f in text_string_to_metric_families(resp.read().decode())}
    # an empty directory: none of this process's own collectors (the default registry) are served
    assert not any(n.startswith(("litellm_ctx_", "python_", "process_")) for n in names)
