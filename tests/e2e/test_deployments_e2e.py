"""Each provider call is managed to the window of the deployment LiteLLM chose.

A real ``litellm --config`` proxy in front of the fake upstream, driven by the openai and anthropic
SDKs on all three routes:

* ``duo`` / ``claude-duo``: one alias, two deployments, a large window and a small one; the
  upstream tells them apart by the model name it receives. Requests routed to the large one get
  its room (sent as they are), those routed to the small one fit the small window.
* ``wide`` → ``narrow``: a fallback chain from a large window to a small one whose first deployment
  cannot be reached; the request that reaches the upstream fits the small window, on the route's
  first request (managed by the pre-call hook, then again for the fallback) and after it (managed
  by the deployment hook only).
* ``same-a`` → ``same-b``: a fallback between two deployments of one window: the second call
  reuses the first one's summaries, no transcript is summarised twice.

A second proxy with a recording callback checks the facts the design rests on: which hooks LiteLLM
calls on each route, for each provider call (fallbacks and bridges included), with what.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import openai
import pytest
from e2e.proxy import ProxyProcess, model_entry, start_proxy

from litellm_ctx_hook.adapters import adapter_for
from litellm_ctx_hook.analysis.counting import TokenCounter
from litellm_ctx_hook.conversation import Format
from litellm_ctx_hook.settings import load_settings
from litellm_ctx_hook.testing.fake_upstream import FakeUpstream, is_summarizer_call
from litellm_ctx_hook.testing.session import anthropic_messages, generate_session

LARGE = 24_000
SMALL = 8_000
OUTPUT = 512
DEAD = "http://127.0.0.1:9"  # discard port: nothing listens, the call fails at once
TURNS = 13  # 11-15k tokens: room in the large window, over the small one


def config(upstream: str) -> dict[str, Any]:
    def entry(alias: str, model: str, window: int, base: str = upstream) -> dict[str, Any]:
        return model_entry(alias, model, base, model_info={"max_input_tokens": window})

    return {
        "model_list": [
            model_entry("summarizer", "openai/gpt-4o-mini", upstream, model_info={"max_input_tokens": 128_000}),
            entry("duo", "openai/gpt-4o-mini", LARGE),
            entry("duo", "openai/gpt-4o", SMALL),
            entry("claude-duo", "anthropic/claude-sonnet-4-5-20250929", LARGE),
            entry("claude-duo", "anthropic/claude-haiku-4-5-20251001", SMALL),
            entry("wide", "openai/gpt-4o-mini", LARGE, DEAD),
            entry("narrow", "openai/gpt-4o", SMALL),
            entry("claude-wide", "anthropic/claude-sonnet-4-5-20250929", LARGE, DEAD),
            entry("claude-narrow", "anthropic/claude-haiku-4-5-20251001", SMALL),
            entry("same-a", "openai/gpt-4o", SMALL, DEAD),
            entry("same-b", "openai/gpt-4o-2024-08-06", SMALL),
        ],
        "litellm_settings": {"callbacks": ["litellm_ctx_hook.proxy_handler_instance"]},
        "router_settings": {
            "num_retries": 0,
            "fallbacks": [{"wide": ["narrow"]}, {"claude-wide": ["claude-narrow"]}, {"same-a": ["same-b"]}],
        },
    }


@dataclass
class Env:
    proxy: ProxyProcess
    upstream: FakeUpstream

    def openai(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.proxy.base_url + "/v1", api_key=self.proxy.master_key, max_retries=0)

    def anthropic(self) -> anthropic.Anthropic:
        return anthropic.Anthropic(base_url=self.proxy.base_url, api_key=self.proxy.master_key, max_retries=0)

    def main_requests(self) -> list[dict[str, Any]]:
        return [r.body for r in self.upstream.requests if not is_summarizer_call(r.body)]

    def summarizer_requests(self) -> list[dict[str, Any]]:
        return [r.body for r in self.upstream.requests if is_summarizer_call(r.body)]


@pytest.fixture(scope="module")
def env(module_upstream: FakeUpstream, redis_url: str) -> Iterator[Env]:
    proxy_env = {"CONDENSATION_MODEL": "summarizer", "CONDENSATION_QUALITY_THRESHOLD": "0.5", "REDIS_URL": redis_url}
    with start_proxy(config(module_upstream.url), proxy_env) as proxy:
        yield Env(proxy, module_upstream)


@pytest.fixture(autouse=True)
def _clear(env: Env) -> None:
    env.upstream.clear()


# -- the three routes --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Route:
    name: str
    fmt: Format  # of the body the client sends and the upstream receives
    aliases: dict[str, str]  # duo / wide / narrow → this route's alias

    def body(self, tag: str) -> dict[str, Any]:
        """A conversation of about 15k tokens, made unique by ``tag`` (no cache carries over)."""
        chat = generate_session(turns=TURNS)["messages"]
        chat[1] = {**chat[1], "content": f"[{tag}] {chat[1]['content']}"}
        if self.fmt is Format.ANTHROPIC:
            return {"system": chat[0]["content"], "messages": anthropic_messages(chat)}
        if self.fmt is Format.RESPONSES:
            return {"input": responses_items(chat)}
        return {"messages": chat}

    def send(self, env: Env, alias: str, body: dict[str, Any]) -> dict[str, str]:
        model = self.aliases[alias]
        if self.fmt is Format.OPENAI:
            raw: Any = env.openai().chat.completions.with_raw_response.create(
                model=model, max_tokens=OUTPUT, **copy.deepcopy(body)
            )
        elif self.fmt is Format.RESPONSES:
            raw = env.openai().responses.with_raw_response.create(
                model=model, max_output_tokens=OUTPUT, **copy.deepcopy(body)
            )
        else:
            raw = env.anthropic().messages.with_raw_response.create(
                model=model, max_tokens=OUTPUT, **copy.deepcopy(body)
            )
        raw.parse()
        return dict(raw.headers)


def responses_items(chat: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A chat conversation as Responses input items (tool calls as function calls)."""
    items: list[dict[str, Any]] = []
    for m in chat:
        if m["role"] == "tool":
            items.append({"type": "function_call_output", "call_id": m["tool_call_id"], "output": m["content"]})
            continue
        if m.get("content"):
            items.append({"role": m["role"], "content": m["content"]})
        for call in m.get("tool_calls") or []:
            fn = call["function"]
            items.append(
                {"type": "function_call", "call_id": call["id"], "name": fn["name"], "arguments": fn["arguments"]}
            )
    return items


OPENAI_ALIASES = {"duo": "duo", "wide": "wide", "narrow": "narrow"}
CLAUDE_ALIASES = {"duo": "claude-duo", "wide": "claude-wide", "narrow": "claude-narrow"}
ROUTES = {
    "chat": Route("chat", Format.OPENAI, OPENAI_ALIASES),
    "responses": Route("responses", Format.RESPONSES, OPENAI_ALIASES),
    "messages": Route("messages", Format.ANTHROPIC, CLAUDE_ALIASES),
}
SMALL_MODELS = {"gpt-4o", "claude-haiku-4-5-20251001"}
LARGE_MODELS = {"gpt-4o-mini", "claude-sonnet-4-5-20250929"}


def texts(fmt: Format, body: dict[str, Any]) -> list[str]:
    return [m.text for m in adapter_for(fmt).parse(body).messages]


def tokens(fmt: Format, body: dict[str, Any], model: str) -> int:
    return TokenCounter(load_settings()).count(adapter_for(fmt).parse(body), model).total


def wait_until_quiet(count: Callable[[], int], settle_s: float = 1.5, deadline_s: float = 60) -> int:
    """Wait until ``count()`` stops growing (background summaries finished); return it."""
    end = time.monotonic() + deadline_s
    last, since = count(), time.monotonic()
    while time.monotonic() < end:
        time.sleep(0.2)
        now = count()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= settle_s:
            break
    return last


# -- a fallback from a large window to a small one ------------------------------------------------------
@pytest.mark.parametrize("route", list(ROUTES.values()), ids=list(ROUTES))
def test_a_fallback_to_a_smaller_window_is_managed_before_it_is_sent(env: Env, route: Route) -> None:
    # The first request of a route is managed by the pre-call hook (to the large window: it fits
    # there) and, for the fallback, again by the deployment hook; the second by the deployment hook.
    for attempt in ("first", "second"):
        env.upstream.clear()
        body = route.body(f"fallback-{route.name}-{attempt}-{uuid.uuid4().hex[:8]}")
        headers = route.send(env, "wide", body)
        [received] = env.main_requests()  # the large deployment was never reached
        assert received["model"] in SMALL_MODELS
        limit = SMALL - OUTPUT
        assert tokens(route.fmt, received, received["model"]) <= limit, attempt
        assert tokens(route.fmt, body, received["model"]) > limit  # it had to be managed
        assert texts(route.fmt, received)[-1] == texts(route.fmt, body)[-1]  # the newest turn, kept
        assert int(headers["x-ctx-tokens-after"]) <= limit < int(headers["x-ctx-tokens-before"])


# -- one alias, two deployments of different windows ----------------------------------------------------
@pytest.mark.parametrize("route", list(ROUTES.values()), ids=list(ROUTES))
def test_each_deployment_of_an_alias_gets_its_own_window(env: Env, route: Route) -> None:
    route.send(
        env,
        "narrow",
        {"messages": [{"role": "user", "content": "hi"}]}
        if route.fmt is not Format.RESPONSES
        else {"input": [{"role": "user", "content": "hi"}]},
    )  # the route's first request is behind us
    seen: dict[str, int] = {}
    for k in range(24):  # the router shuffles: until both deployments have been chosen
        env.upstream.clear()
        body = route.body(f"duo-{route.name}-{k}-{uuid.uuid4().hex[:8]}")
        headers = route.send(env, "duo", body)
        [received] = env.main_requests()
        model = received["model"]
        if model in LARGE_MODELS:  # the large window's room: sent as it is
            assert texts(route.fmt, received) == texts(route.fmt, body)
            assert headers["x-ctx-tokens-before"] == headers["x-ctx-tokens-after"]
            assert tokens(route.fmt, body, model) > SMALL  # what the smallest window would have condensed
        else:
            assert model in SMALL_MODELS
            assert tokens(route.fmt, received, model) <= SMALL - OUTPUT
            assert int(headers["x-ctx-tokens-after"]) < int(headers["x-ctx-tokens-before"])
        seen[model] = seen.get(model, 0) + 1
        if seen.keys() & LARGE_MODELS and seen.keys() & SMALL_MODELS:
            break
    assert seen.keys() & LARGE_MODELS and seen.keys() & SMALL_MODELS, seen


def chatty_conversation(tag: str, turns: int = 300) -> list[dict[str, Any]]:
    """Many short turns: nothing worth clearing, so the plugin has to condense."""
    msgs: list[dict[str, Any]] = [{"role": "system", "content": f"[{tag}] You are a travel agent."}]
    for k in range(turns):
        msgs.append({"role": "user", "content": f"Also check flight HAT{100 + k} on 2024-05-{k % 28 + 1:02d} for me."})
        msgs.append({"role": "assistant", "content": f"Flight HAT{100 + k} has {k % 9} seats left at ${200 + k}."})
    msgs.append({"role": "user", "content": "Book the cheapest one."})
    return msgs


# -- a fallback between deployments of one window --------------------------------------------------------
def test_a_fallback_of_the_same_window_reuses_the_first_calls_work(env: Env) -> None:
    env.openai().chat.completions.create(model="same-b", messages=[{"role": "user", "content": "hi"}])
    env.upstream.clear()  # the route's first request (managed before routing) is behind us
    chat = chatty_conversation(f"same-{uuid.uuid4().hex[:8]}")
    raw = env.openai().chat.completions.with_raw_response.create(model="same-a", messages=chat, max_tokens=OUTPUT)  # type: ignore[arg-type]
    assert raw.headers["x-ctx-cache"] == "hit"  # the fallback's call found the first call's summaries
    calls = wait_until_quiet(lambda: len(env.summarizer_requests()))
    assert calls, "the request was condensed with the summariser"
    transcripts = [json.dumps(body.get("messages")) for body in env.summarizer_requests()]
    assert len(set(transcripts)) == len(transcripts), "a transcript was summarised twice"
    [received] = env.main_requests()
    assert received["model"] == "gpt-4o-2024-08-06"
    assert tokens(Format.OPENAI, received, "gpt-4o") <= SMALL - OUTPUT


# -- the facts: which hooks LiteLLM calls, where ---------------------------------------------------------
RECORDER = """
import json, os
from litellm.integrations.custom_logger import CustomLogger

def _record(event):
    with open(os.environ["HOOK_RECORD_FILE"], "a", encoding="utf-8") as f:
        f.write(json.dumps(event) + "\\n")

class Recorder(CustomLogger):
    async def async_pre_call_hook(self, user_api_key_dict, cache, data, call_type):
        _record({"hook": "pre_call", "call_type": str(call_type), "model": data.get("model")})
        return data

    async def async_pre_call_deployment_hook(self, kwargs, call_type):
        key = "litellm_metadata" if isinstance(kwargs.get("litellm_metadata"), dict) else "metadata"
        meta = kwargs.get(key) or {}
        text = json.dumps(kwargs.get("messages") or kwargs.get("input"))
        _record({
            "hook": "deployment",
            "call_type": getattr(call_type, "value", str(call_type)),
            "model": kwargs.get("model"),
            "window": (kwargs.get("model_info") or {}).get("max_input_tokens"),
            "group": meta.get("model_group"),
            "marked": "MARK" in text,
        })
        out = dict(kwargs)  # mark the first attempt's body: does the mark reach the fallback, the bridge?
        body_key = "messages" if isinstance(kwargs.get("messages"), list) else "input"
        if meta.get("model_group") in ("wide", "claude-wide") and isinstance(kwargs.get(body_key), list):
            out[body_key] = [*kwargs[body_key], {"role": "user", "content": "MARK"}]
        return out

recorder = Recorder()
"""


def test_litellm_calls_the_deployment_hook_once_per_provider_call(module_upstream: FakeUpstream, tmp_path: Any) -> None:
    """On every route: the pre-call hook once, before routing; the deployment hook once per provider
    call (the fallback's too) with the deployment's model and ``model_info``, on the body as the
    pre-call hook left it; LiteLLM's bridges call it again with another call type."""
    record = tmp_path / "hooks.jsonl"
    cfg = config(module_upstream.url)
    cfg["litellm_settings"] = {"callbacks": ["recorder.recorder"]}
    with start_proxy(cfg, {"HOOK_RECORD_FILE": str(record)}, files={"recorder.py": RECORDER}) as proxy:
        env = Env(proxy, module_upstream)
        expected = {  # route → the deployment hook's call types, per alias
            "chat": {"wide": ["acompletion", "acompletion"], "claude-wide": ["acompletion", "acompletion"]},
            "responses": {
                "wide": ["aresponses", "aresponses"],
                "claude-wide": ["aresponses", "acompletion", "aresponses", "acompletion"],  # Responses → chat
            },
            "messages": {
                "wide": [
                    "anthropic_messages",
                    "aresponses",
                    "anthropic_messages",
                    "aresponses",
                ],  # Messages → Responses
                "claude-wide": ["anthropic_messages", "anthropic_messages"],
            },
        }
        for name, route in ROUTES.items():
            for alias, call_types in expected[name].items():
                record.write_text("")
                r = Route(name, route.fmt, {"wide": alias})
                r.send(
                    env,
                    "wide",
                    {"messages": [{"role": "user", "content": "hi"}]}
                    if route.fmt is not Format.RESPONSES
                    else {"input": [{"role": "user", "content": "hi"}]},
                )
                events = [json.loads(line) for line in record.read_text().splitlines()]
                pre = [e for e in events if e["hook"] == "pre_call"]
                deployment = [e for e in events if e["hook"] == "deployment"]
                assert len(pre) == 1 and pre[0]["model"] == alias, (name, alias, events)
                assert [e["call_type"] for e in deployment] == call_types, (name, alias, events)
                first, fallback = deployment[0], deployment[len(deployment) // 2]
                assert (first["group"], first["window"]) == (alias, LARGE)
                assert fallback["group"] == alias.replace("wide", "narrow") and fallback["window"] == SMALL
                assert not first["marked"] and not fallback["marked"]  # the first attempt's change does not carry over
                if len(deployment) == 4:
                    assert deployment[1]["marked"]  # the bridge gets the body the outer call's hook returned
