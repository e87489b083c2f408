"""The LiteLLM facts the hook relies on (docs/architecture.md, "LiteLLM facts the hook relies on"),
pinned against a real ``litellm --config`` proxy.

One proxy for the whole module, with the probe callback (``probe_hook.py``) and the fake upstream.
The probe records what LiteLLM hands a pre-call hook, rewrites the last user text to
``probed[<call_type>]: <text>`` and adds ``x-probe`` response headers; the fake upstream records
what the proxy sent on. Each test tags its request with a unique marker to find its records.

Verified on LiteLLM 1.106.2 (a failure here after an upgrade means one of these facts changed):

* ``callbacks: ["probe_hook.probe_instance"]`` loads ``<config dir>/probe_hook.py`` when that file
  exists (module not entered in ``sys.modules``); otherwise ``importlib.import_module`` on the
  dotted module path (``PYTHONPATH`` / installed packages). Each module is loaded once.
* call types: ``/v1/chat/completions`` → ``acompletion``, ``/v1/responses`` → ``aresponses``,
  ``/v1/messages`` → ``anthropic_messages``; ``data["model"]`` is the alias the client sent.
* proxy metadata: ``data["metadata"]`` on chat, ``data["litellm_metadata"]`` on messages and
  responses, with ``user_api_key_hash`` (``"litellm_proxy_master_key"`` for the master key),
  ``user_api_key_team_id``/``user_api_key_alias`` (``None`` without virtual keys) and more. On
  ``/v1/messages`` ``data["metadata"]`` exists only when the client sent Anthropic's ``metadata``,
  and it is forwarded upstream.
* a key added at the top level of ``data`` is forwarded upstream on chat (as a body field), not on
  messages or responses: stash hook state in the route's metadata key, which is visible again in
  ``async_post_call_response_headers_hook``.
* the response-headers hook runs for plain and streamed responses on all three routes (before the
  first byte); on a failed request it runs with ``response=None`` on chat and responses only.
* ``HTTPException(400, detail={"error": msg, ...})`` → HTTP 400, ``openai.BadRequestError`` /
  ``anthropic.BadRequestError`` whose message is ``msg``; the other detail fields appear under
  ``provider_specific_fields``. A returned string → 400 on all three routes. An unexpected exception
  → HTTP 500 (``internal_server_error`` / Anthropic ``api_error``) carrying the exception text.
* ``litellm.proxy.proxy_server.llm_router`` is set while the hook runs; ``await
  llm_router.acompletion(model="summarizer", ...)`` from inside the hook resolves the alias and
  reaches the upstream; the pre-call hook does not fire for that inner call, success logging does,
  with the metadata passed in.
* an Anthropic-format request to an OpenAI model reaches the upstream as a Responses API call.
* ``callbacks: ["prometheus"]`` mounts ``/metrics`` without an enterprise licence; it needs the
  master key by default (401 without), ``/metrics`` redirects to ``/metrics/``, and metrics in the
  default ``prometheus_client`` registry (the hook's) are exported there.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from e2e.proxy import DEFAULT_MODELS, REPO_ROOT, ProxyProcess, start_proxy, upstream_config

from litellm_ctx_hook.testing.fake_upstream import FakeUpstream, RecordedRequest, read_record_file

pytestmark = pytest.mark.e2e

HERE = Path(__file__).resolve().parent
CALLBACKS = ["probe_hook.probe_instance", "e2e.probe_hook.recorder_instance", "prometheus"]
MASTER_KEY_HASH = "litellm_proxy_master_key"


@dataclass(frozen=True)
class Route:
    name: str
    api: str  # chat | responses | anthropic
    stream: bool
    call_type: str
    metadata_key: str
    alias: str  # what the client asks for
    upstream_endpoint: str
    upstream_model: str  # what the upstream receives


def _route(api: str, stream: bool) -> Route:
    name = api + ("-stream" if stream else "")
    if api == "chat":
        return Route(name, api, stream, "acompletion", "metadata", "gpt-4o-mini", "/chat/completions", "gpt-4o-mini")
    if api == "responses":
        return Route(name, api, stream, "aresponses", "litellm_metadata", "gpt-4o-mini", "/responses", "gpt-4o-mini")
    return Route(
        name, api, stream, "anthropic_messages", "litellm_metadata", "claude-sonnet", "/messages",
        "claude-sonnet-4-5-20250929",
    )  # fmt: skip


PLAIN_ROUTES = ["chat", "responses", "anthropic"]
ROUTES = {r.name: r for r in (_route(api, stream) for api in PLAIN_ROUTES for stream in (False, True))}


@dataclass
class Probe:
    proxy: ProxyProcess
    upstream: FakeUpstream
    record_file: Path
    openai: openai.OpenAI
    anthropic: anthropic.Anthropic

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        text = self.record_file.read_text(encoding="utf-8") if self.record_file.exists() else ""
        # The proxy may be writing an event (a success log) right now: only whole lines count.
        lines = text[: text.rfind("\n") + 1].splitlines()
        events = [json.loads(line) for line in lines if line.strip()]
        return [e for e in events if kind is None or e["event"] == kind]

    def pre_call(self, marker: str) -> dict[str, Any]:
        found = [e for e in self.events("pre_call") if marker in e["last_user_text"]]
        assert len(found) == 1, f"expected one pre-call event for {marker}, got {len(found)}"
        return found[0]

    def headers_event(self, token: str) -> dict[str, Any]:
        found = [e for e in self.events("headers") if e["probe_token"] == token]
        assert len(found) == 1, f"expected one headers event for token {token}, got {len(found)}"
        return found[0]

    def wait_event(self, predicate: Callable[[dict[str, Any]], bool], timeout_s: float = 10.0) -> dict[str, Any]:
        """Logging callbacks run after the response: poll for the event."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for event in self.events():
                if predicate(event):
                    return event
            time.sleep(0.05)
        raise AssertionError("event not recorded in time; log tail:\n" + self.proxy.log_tail())

    def upstream_with(self, marker: str) -> list[RecordedRequest]:
        return [r for r in self.upstream.requests if marker in json.dumps(r.body)]


@pytest.fixture(scope="module")
def probe(module_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Probe]:
    record_file = tmp_path_factory.mktemp("probe") / "probe.jsonl"
    env = {
        "PROBE_RECORD_FILE": str(record_file),
        # the repository (litellm_ctx_hook) and tests/ (for the importable ``e2e.probe_hook`` path)
        "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), str(REPO_ROOT / "tests")]),
    }
    config = upstream_config(module_upstream.url, callbacks=CALLBACKS)
    # probe_hook.py next to the config: LiteLLM resolves "probe_hook.probe_instance" relative to it
    with start_proxy(config, env, files={"probe_hook.py": HERE / "probe_hook.py"}) as proxy:
        print(f"proxy started in {proxy.startup_s:.1f} s")
        yield Probe(
            proxy=proxy,
            upstream=module_upstream,
            record_file=record_file,
            openai=openai.OpenAI(base_url=proxy.base_url + "/v1", api_key=proxy.master_key, max_retries=0, timeout=60),
            anthropic=anthropic.Anthropic(base_url=proxy.base_url, api_key=proxy.master_key, max_retries=0, timeout=60),
        )


@pytest.fixture
def marker() -> str:
    return f"mark-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class Reply:
    headers: httpx.Headers
    text: str


def send(probe: Probe, route: Route, text: str, *, model: str | None = None, **extra: Any) -> Reply:
    """One request through the official SDK for the route; streams are read to the end."""
    model = model or route.alias
    if route.api == "chat":
        raw_chat = probe.openai.chat.completions.with_raw_response.create(
            model=model, messages=[{"role": "user", "content": text}], stream=route.stream, **extra
        )
        if route.stream:
            chunks = list(raw_chat.parse())
            return Reply(raw_chat.headers, "".join(c.choices[0].delta.content or "" for c in chunks if c.choices))
        return Reply(raw_chat.headers, raw_chat.parse().choices[0].message.content or "")
    if route.api == "responses":
        if route.stream:
            raw_stream = probe.openai.responses.with_raw_response.create(
                model=model, input=[{"role": "user", "content": text}], stream=True, **extra
            )
            events = list(raw_stream.parse())
            return Reply(raw_stream.headers, "".join(e.delta for e in events if e.type == "response.output_text.delta"))
        raw_resp = probe.openai.responses.with_raw_response.create(model=model, input=text, **extra)
        return Reply(raw_resp.headers, raw_resp.parse().output_text)
    raw_msg = probe.anthropic.messages.with_raw_response.create(
        model=model, max_tokens=64, messages=[{"role": "user", "content": text}], stream=route.stream, **extra
    )
    if route.stream:
        events = list(raw_msg.parse())
        deltas = [e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta"]
        return Reply(raw_msg.headers, "".join(deltas))
    blocks = raw_msg.parse().content
    return Reply(raw_msg.headers, "".join(b.text for b in blocks if b.type == "text"))


def last_user_text(body: dict[str, Any]) -> str:
    """The last user text of an upstream chat, Anthropic or Responses body."""
    if isinstance(body.get("input"), str):
        return str(body["input"])
    items = body.get("messages") or body.get("input") or []
    content = [m for m in items if m.get("role") == "user"][-1]["content"]
    if isinstance(content, str):
        return content
    return str([p for p in content if "text" in p][-1]["text"])


# --- loading the callback ---------------------------------------------------------------------


def test_callback_path_resolves_next_to_the_config_first_then_by_import(probe: Probe) -> None:
    loaded = probe.events("loaded")
    by_module = {e["module"]: e for e in loaded}
    assert sorted(by_module) == ["e2e.probe_hook", "probe_hook"]
    assert len(loaded) == 2, "each callback module is loaded exactly once"
    # "probe_hook.probe_instance": the file beside the config, executed from there, not imported
    assert Path(by_module["probe_hook"]["file"]) == probe.proxy.config_path.parent / "probe_hook.py"
    assert by_module["probe_hook"]["in_sys_modules"] is False
    # "e2e.probe_hook.recorder_instance": no e2e/probe_hook.py beside the config → importlib via PYTHONPATH
    assert Path(by_module["e2e.probe_hook"]["file"]) == HERE / "probe_hook.py"
    assert by_module["e2e.probe_hook"]["in_sys_modules"] is True


# --- what the pre-call hook sees and changes ---------------------------------------------------


@pytest.mark.parametrize("route_name", list(ROUTES))
def test_pre_call_hook_sees_route_and_its_mutation_reaches_upstream(probe: Probe, route_name: str, marker: str) -> None:
    route = ROUTES[route_name]
    reply = send(probe, route, f"hello {marker}")
    assert reply.text == "ok: 1 messages received"

    seen = probe.pre_call(marker)
    assert seen["call_type"] == route.call_type
    assert seen["model"] == route.alias  # the alias, not the deployment's model
    assert bool(seen["stream"]) is route.stream
    assert {"model", "proxy_server_request", "litellm_call_id", route.metadata_key} <= set(seen["data_keys"])
    other_key = "litellm_metadata" if route.metadata_key == "metadata" else "metadata"
    assert seen[other_key] is None, f"{other_key} should be absent on {route.name}"
    metadata = seen[route.metadata_key]
    for key in ("user_api_key_team_id", "user_api_key_hash", "user_api_key_alias", "user_api_key_user_id"):
        assert key in metadata["keys"]
    assert metadata["user_api_key"]["user_api_key_hash"] == MASTER_KEY_HASH
    assert metadata["user_api_key"]["user_api_key_team_id"] is None  # master key, no virtual keys
    assert metadata["user_api_key"]["user_api_key_alias"] is None
    assert seen["router_is_set"] is True
    assert seen["router_model_names"] == sorted(DEFAULT_MODELS)
    assert seen["cache_type"] == "UserApiKeyCache"  # the auth cache: not for the hook's own use

    (sent,) = probe.upstream_with(marker)
    assert sent.endpoint == route.upstream_endpoint
    assert sent.body["model"] == route.upstream_model
    assert last_user_text(sent.body) == f"probed[{route.call_type}]: hello {marker}"
    assert bool(sent.body.get("stream")) is route.stream
    assert "probe_token" not in json.dumps(sent.body), "the route's metadata key is not forwarded upstream"


@pytest.mark.parametrize("route_name", list(ROUTES))
def test_response_headers_hook_adds_headers_and_sees_pre_call_state(probe: Probe, route_name: str, marker: str) -> None:
    route = ROUTES[route_name]
    reply = send(probe, route, f"headers {marker}")
    token = probe.pre_call(marker)["token"]
    assert reply.headers["x-probe"] == "1"
    assert reply.headers["x-probe-token"] == token  # stashed in the route's metadata by the pre-call hook
    event = probe.headers_event(token)
    assert event["response_is_none"] is False
    assert event["probe_call_type"] == route.call_type
    assert event["has_request_headers"] is True
    assert set(event["litellm_call_info"]) == {"custom_llm_provider", "model_info", "api_base", "model_id"}


def test_anthropic_metadata_is_the_clients_own_and_is_forwarded(probe: Probe, marker: str) -> None:
    send(probe, ROUTES["anthropic"], f"meta {marker}", metadata={"user_id": "u-42"})
    seen = probe.pre_call(marker)
    assert seen["metadata"]["keys"] == ["user_id"]
    assert "user_api_key_hash" in seen["litellm_metadata"]["keys"]
    (sent,) = probe.upstream_with(marker)
    assert sent.body["metadata"] == {"user_id": "u-42"}


@pytest.mark.parametrize(("route_name", "forwarded"), [("chat", True), ("responses", False), ("anthropic", False)])
def test_top_level_keys_added_by_the_hook_reach_upstream_on_chat_only(
    probe: Probe, route_name: str, forwarded: bool, marker: str
) -> None:
    send(probe, ROUTES[route_name], f"probe:stash-top-level {marker}")
    token = probe.pre_call(marker)["token"]
    (sent,) = probe.upstream_with(marker)
    assert (sent.body.get("probe_top_level") == token) is forwarded


def test_anthropic_request_to_an_openai_model_goes_upstream_as_responses_api(probe: Probe, marker: str) -> None:
    reply = send(probe, ROUTES["anthropic"], f"cross {marker}", model="gpt-4o-mini")
    assert reply.text == "ok: 1 messages received"
    assert reply.headers["x-probe"] == "1"
    assert probe.pre_call(marker)["call_type"] == "anthropic_messages"
    (sent,) = probe.upstream_with(marker)
    assert sent.endpoint == "/responses"
    assert sent.body["input"][-1]["content"][-1] == {
        "type": "input_text",
        "text": f"probed[anthropic_messages]: cross {marker}",
    }


# --- rejecting and failing -----------------------------------------------------------------------


def expect_error(probe: Probe, route: Route, text: str, status: int) -> tuple[Exception, dict[str, Any]]:
    errors: tuple[type[Exception], ...] = (openai.APIStatusError, anthropic.APIStatusError)
    with pytest.raises(errors) as info:
        send(probe, route, text)
    err = info.value
    assert isinstance(err, openai.APIStatusError | anthropic.APIStatusError)
    assert err.status_code == status
    return err, err.response.json()


@pytest.mark.parametrize("route_name", list(ROUTES))
def test_http_exception_from_the_hook_is_a_400_for_the_sdk(probe: Probe, route_name: str, marker: str) -> None:
    route = ROUTES[route_name]
    err, body = expect_error(probe, route, f"probe:raise-http {marker}", 400)
    assert "probe rejected: context_window_exceeded" in str(err)
    extra = {"error": "probe rejected: context_window_exceeded", "ctx_tokens": 1234}
    if route.api == "anthropic":
        assert isinstance(err, anthropic.BadRequestError)
        assert body == {
            "type": "error",
            "error": {
                "type": "invalid_request_error",
                "message": "probe rejected: context_window_exceeded",
                "provider_specific_fields": extra,
            },
        }
        assert "x-probe" not in err.response.headers  # no headers hook on a failed /v1/messages
    else:
        assert isinstance(err, openai.BadRequestError)
        assert body["error"]["message"] == "probe rejected: context_window_exceeded"
        assert body["error"]["type"] == "invalid_request_error"
        assert body["error"]["code"] == "400"
        assert body["error"]["provider_specific_fields"] == extra
        assert err.response.headers["x-probe"] == "1"  # headers hook ran with response=None
    assert probe.upstream_with(marker) == []


@pytest.mark.parametrize("route_name", PLAIN_ROUTES)
def test_returned_string_from_the_hook_is_a_400(probe: Probe, route_name: str, marker: str) -> None:
    err, _ = expect_error(probe, ROUTES[route_name], f"probe:return-string {marker}", 400)
    assert isinstance(err, openai.BadRequestError | anthropic.BadRequestError)
    assert "probe says no" in str(err)
    assert probe.upstream_with(marker) == []


@pytest.mark.parametrize("route_name", ["chat", "chat-stream", "responses", "anthropic", "anthropic-stream"])
def test_unexpected_exception_in_the_hook_is_a_500(probe: Probe, route_name: str, marker: str) -> None:
    route = ROUTES[route_name]
    err, body = expect_error(probe, route, f"probe:raise-runtime {marker}", 500)
    assert isinstance(err, openai.InternalServerError | anthropic.InternalServerError)
    if route.api == "anthropic":
        assert body == {"type": "error", "error": {"type": "api_error", "message": "probe exploded unexpectedly"}}
    else:
        assert body["error"]["message"] == "probe exploded unexpectedly"
        assert body["error"]["type"] == "internal_server_error"
        assert body["error"]["code"] == "500"
    assert ("x-probe" in err.response.headers) is (route.api != "anthropic")
    assert probe.upstream_with(marker) == []


# --- calling the proxy's router from inside the hook --------------------------------------------


@pytest.mark.parametrize("route_name", PLAIN_ROUTES)
def test_hook_can_call_the_summarizer_alias_through_llm_router(probe: Probe, route_name: str, marker: str) -> None:
    route = ROUTES[route_name]
    reply = send(probe, route, f"probe:summarize {marker}")
    assert reply.text == "ok: 1 messages received"
    seen = probe.pre_call(marker)
    assert seen["summarizer"] == {
        "ok": True,
        "text": "Summary: BILL-2291 src/billing_core.py 42",
        "model": "gpt-4o-mini",
    }

    # the inner call reached the upstream as a chat completion for the alias' deployment, before the request
    (outer,) = probe.upstream_with(marker)
    inner = [
        r
        for r in probe.upstream.requests_to("/chat/completions")
        if "src/billing_core.py" in json.dumps(r.body) and r.received_at <= outer.received_at
    ]
    assert inner, "the summariser request did not reach the upstream"
    assert inner[-1].body["model"] == "gpt-4o-mini"
    assert inner[-1].body["messages"][0]["role"] == "system"

    # the pre-call hook does not run for the inner call; success logging does, with our metadata
    assert not [e for e in probe.events("pre_call") if e["model"] == "summarizer"]
    logged = probe.wait_event(lambda e: e["event"] == "success_log" and e.get("probe_parent_token") == seen["token"])
    assert logged["model_group"] == "summarizer"
    assert logged["probe_inner_call"] is True
    assert logged["user_api_key_hash"] == MASTER_KEY_HASH


# --- Prometheus ----------------------------------------------------------------------------------


def test_metrics_endpoint_without_enterprise_license(probe: Probe) -> None:
    """Recorded, not required: skips (with the reason) when /metrics is not served."""
    send(probe, ROUTES["chat"], "metrics warm-up")
    anonymous = httpx.get(probe.proxy.base_url + "/metrics/", timeout=10)
    authed = httpx.get(probe.proxy.base_url + "/metrics/", headers=probe.proxy.auth_headers, timeout=10)
    redirect = httpx.get(probe.proxy.base_url + "/metrics", headers=probe.proxy.auth_headers, timeout=10)
    print(
        f"/metrics/ anonymous={anonymous.status_code} master-key={authed.status_code}; /metrics={redirect.status_code}"
    )
    if authed.status_code != 200:
        pytest.skip(f"/metrics/ is not served on this LiteLLM: HTTP {authed.status_code}")
    assert anonymous.status_code == 401  # auth required by default (require_auth_for_metrics_endpoint)
    assert redirect.status_code == 307
    assert "litellm_proxy_total_requests_metric_total" in authed.text
    assert 'probe_hook_calls_total{call_type="acompletion"}' in authed.text  # default registry is exported


# --- the fake upstream itself (the tests above rely on it) ---------------------------------------


def test_fake_upstream_failures_delays_and_record_file(fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    client = openai.OpenAI(base_url=fake_upstream.url + "/v1", api_key="sk-fake", max_retries=0, timeout=5)
    claude = anthropic.Anthropic(base_url=fake_upstream.url, api_key="sk-fake", max_retries=0, timeout=5)
    messages: Any = [{"role": "user", "content": "hi"}]

    fake_upstream.fail_status = 503
    with pytest.raises(openai.InternalServerError) as oai_err:
        client.chat.completions.create(model="m", messages=messages)
    assert oai_err.value.response.json()["error"]["message"] == "fake upstream failure 503"
    fake_upstream.fail_status = 429
    with pytest.raises(anthropic.RateLimitError) as ant_err:
        claude.messages.create(model="c", max_tokens=8, messages=messages)
    assert ant_err.value.response.json()["error"]["type"] == "rate_limit_error"

    fake_upstream.fail_status = None
    fake_upstream.delay_s = 1.0
    with pytest.raises(openai.APITimeoutError):
        client.with_options(timeout=0.2).chat.completions.create(model="m", messages=messages)
    fake_upstream.delay_s = 0
    assert client.chat.completions.create(model="m", messages=messages).choices[0].message.content == (
        "ok: 1 messages received"
    )
    assert [r.endpoint for r in fake_upstream.requests] == ["/chat/completions", "/messages"] + [
        "/chat/completions"
    ] * 2

    record_file = tmp_path / "requests.jsonl"
    with FakeUpstream(record_file=record_file) as recording:
        openai.OpenAI(base_url=recording.url, api_key="k").responses.create(model="m", input="hello")
        assert read_record_file(record_file) == recording.requests
    assert read_record_file(record_file)[0].path == "/responses"  # the prefix-less path works too


def test_fake_upstream_runs_as_a_process_until_sigterm(tmp_path: Path) -> None:
    record_file = tmp_path / "requests.jsonl"
    process = subprocess.Popen(
        [sys.executable, "-m", "litellm_ctx_hook.testing.fake_upstream", "--record", str(record_file)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        stream = anthropic.Anthropic(base_url=url, api_key="k").messages.create(
            model="c", max_tokens=8, messages=[{"role": "user", "content": "x"}], stream=True
        )
        assert [e.type for e in stream][-2:] == ["message_delta", "message_stop"]
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    (recorded,) = read_record_file(record_file)
    assert recorded.body["stream"] is True
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/v1/models", timeout=2)
