"""The fault benchmark's fake upstream fails on command, as the phases of ``bench.faults`` expect."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from litellm_ctx_hook.condensing.summarizer import TRANSCRIPT_OPEN
from litellm_ctx_hook.testing.fake_upstream import free_port

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hello"}]}
SUMMARY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"{TRANSCRIPT_OPEN}\nuser: hi"}]}


@pytest.fixture(scope="module")
def upstream() -> Iterator[str]:
    port = free_port()
    args = [sys.executable, "-m", "bench.fault_upstream", "--port", str(port), "--window", "16000", "--slow", "0.2"]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(url + "/control", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _control(url: str, **state: object) -> None:
    httpx.post(url + "/control", json={"phase": "test", **state}, timeout=5).raise_for_status()


def test_the_main_calls_fail_with_the_status_asked_and_say_so(upstream: str) -> None:
    _control(upstream, summarizer="ok", main_status=500)
    reply = httpx.post(upstream + "/v1/chat/completions", json=CHAT, timeout=5)
    assert reply.status_code == 500 and "fake upstream failure 500" in reply.text  # how bench.faults tells them apart
    _control(upstream, summarizer="ok", main_status=None)
    assert httpx.post(upstream + "/v1/chat/completions", json=CHAT, timeout=5).status_code == 200


@pytest.mark.parametrize("mode", ["500", "429"])
def test_the_summariser_answers_the_error_asked(upstream: str, mode: str) -> None:
    _control(upstream, summarizer=mode, main_status=None)
    reply = httpx.post(upstream + "/v1/chat/completions", json=SUMMARY, timeout=5)
    assert reply.status_code == int(mode) and f"summariser {mode}" in reply.text


@pytest.mark.parametrize("mode", ["empty", "garbage", "long", "injection"])
def test_the_summariser_answers_a_completion_in_the_other_modes(upstream: str, mode: str) -> None:
    _control(upstream, summarizer=mode, main_status=None)
    reply = httpx.post(upstream + "/v1/chat/completions", json=SUMMARY, timeout=5)
    assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["role"] == "assistant"
