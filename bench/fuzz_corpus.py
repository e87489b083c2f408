"""The corpus of the differential fuzzing benchmark (:mod:`bench.fuzz`): request bodies for the
three routes, deterministic for a seed.

Valid conversations come from ``../shared/evaldata`` (tau-bench and SWE-Gym agent runs, Claude Code
sessions) when it is present, else from the project's generated agent sessions; each body is a
prefix of one, written for its route (chat completions, Anthropic messages, Responses), sent to a
small-window model (so many are over the limit and get managed) or a large one, sometimes
streamed. Most bodies are then mutated, one or more of: wrong types, unknown roles and part types,
null and empty content, broken, missing or duplicate tool ids, orphan tool results, bad data URLs,
lone surrogates, 10 MB strings, deep nesting, unknown models, unknown fields.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from bench import evaldata
from litellm_ctx_hook.testing.session import anthropic_messages, generate_session

SEED = 20261130
ROUTES = {"chat": "/v1/chat/completions", "messages": "/v1/messages", "responses": "/v1/responses"}
MODELS = {  # route -> (small-window alias, large-window alias): see bench.fuzz.proxy_config
    "chat": ("small", "gpt-4o-mini"),
    "messages": ("claude-small", "claude-sonnet"),
    "responses": ("small", "gpt-4o-mini"),
}
MAX_SEED_CHARS = 80_000  # a valid body is a prefix of at most this much JSON (up to ~20k tokens)
HUGE_CHARS = 10_000_000
DEEP = 3_000
DEEP_MARK = "@@nested-3000-levels@@"  # replaced in the JSON text by DEEP nested objects


@dataclass(frozen=True)
class Case:
    """One fuzzed request: its route, body and the mutations that made it."""

    index: int
    route: str
    body: dict[str, Any]
    mutations: tuple[str, ...]

    @property
    def path(self) -> str:
        return ROUTES[self.route]

    def encode(self) -> bytes:
        """The JSON text sent: lone surrogates as ``\\udXXX`` escapes (as a client sends them), and
        nesting deeper than Python's encoder can write spliced in as text."""
        text = json.dumps(self.body, ensure_ascii=True)
        return text.replace(json.dumps(DEEP_MARK), '{"k":[' * DEEP + '"leaf"' + "]}" * DEEP).encode("ascii")


# -- seed conversations (OpenAI chat format, plus native Anthropic sessions) ----------------------


def seed_conversations(limit: int = 40) -> tuple[list[list[dict[str, Any]]], list[list[dict[str, Any]]]]:
    """(OpenAI agent conversations, Anthropic sessions), real when evaldata is present."""
    if evaldata.available():
        chats = [s.messages for _, s in zip(range(limit), evaldata.tau_runs(), strict=False)]
        chats += [s.messages for _, s in zip(range(limit // 4), evaldata.swegym_runs(), strict=False)]
        sessions = [s.messages for _, s in zip(range(limit), evaldata.claude_sessions(), strict=False)]
        return chats, sessions
    chats = [generate_session(turns=6 + 4 * k, seed=100 + k)["messages"] for k in range(12)]
    return chats, [anthropic_messages(c) for c in chats[:6]]


def responses_from_openai(messages: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    """(instructions, input items) of an OpenAI conversation."""
    instructions = None
    items: list[dict[str, Any]] = []
    for m in messages:
        role, content = m.get("role"), m.get("content")
        if role == "system" and instructions is None and isinstance(content, str):
            instructions = content
        elif role == "tool":
            items.append({"type": "function_call_output", "call_id": m["tool_call_id"], "output": content or ""})
        else:
            if isinstance(content, str) and content:
                kind = "output_text" if role == "assistant" else "input_text"
                items.append({"type": "message", "role": role, "content": [{"type": kind, "text": content}]})
            for call in m.get("tool_calls") or []:
                fn = call["function"]
                items.append(
                    {"type": "function_call", "call_id": call["id"], "name": fn["name"], "arguments": fn["arguments"]}
                )
    return instructions, items


def _prefix(messages: list[dict[str, Any]], rng: random.Random, ends: Callable[[dict[str, Any]], bool]) -> list[Any]:
    """A prefix ending where ``ends`` holds, of at most ``MAX_SEED_CHARS`` of JSON."""
    sizes, total = [], 0
    for m in messages:
        total += len(json.dumps(m))
        sizes.append(total)
    cuts = [k + 1 for k, m in enumerate(messages) if ends(m) and sizes[k] <= MAX_SEED_CHARS]
    if not cuts:
        return copy.deepcopy(messages[:1])
    return copy.deepcopy(messages[: rng.choice(cuts)])


def valid_body(route: str, rng: random.Random, chats: list[Any], sessions: list[Any]) -> dict[str, Any]:
    small, large = MODELS[route]
    body: dict[str, Any] = {"model": small if rng.random() < 0.6 else large}
    if route == "chat":
        body["messages"] = _prefix(rng.choice(chats), rng, lambda m: m.get("role") in ("user", "tool"))
        body["max_tokens"] = 256
    elif route == "messages":
        source = rng.choice(sessions) if sessions and rng.random() < 0.7 else anthropic_messages(rng.choice(chats))
        body["messages"] = _prefix(source, rng, lambda m: m.get("role") == "user")
        body["max_tokens"] = 256
        if rng.random() < 0.5:
            body["system"] = "You are a careful coding agent."
    else:
        instructions, items = responses_from_openai(rng.choice(chats))
        body["input"] = _prefix(items, rng, lambda m: m.get("role") == "user" or m["type"] == "function_call_output")
        if instructions:
            body["instructions"] = instructions
        body["max_output_tokens"] = 256
    if rng.random() < 0.2:
        body["stream"] = True
    return body


# -- mutations ------------------------------------------------------------------------------------


def _turns(body: dict[str, Any]) -> list[Any]:
    turns = body.get("messages", body.get("input"))
    return turns if isinstance(turns, list) else []


def _pick(body: dict[str, Any], rng: random.Random) -> dict[str, Any] | None:
    turns = [t for t in _turns(body) if isinstance(t, dict)]
    return rng.choice(turns) if turns else None


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"k": [value]}
    return value


def _wrong_type(body: dict[str, Any], rng: random.Random) -> None:
    key = "input" if "input" in body else "messages"
    choice = rng.randrange(6)
    if choice == 0:
        body[key] = rng.choice([42, "just text", {"role": "user"}, True, None])
    elif (m := _pick(body, rng)) is not None:
        field = ["content", "role", "tool_calls", "name"][choice % 4]
        m[field] = rng.choice([42, 3.5, {"text": "x"}, [1, 2], True, [None]])
    if rng.random() < 0.3:  # a top-level field of the wrong type
        if "input" in body:
            body["instructions"] = rng.choice([5, ["a"], {"x": 1}])
        elif str(body.get("model", "")).startswith("claude"):
            body["system"] = rng.choice([7, {"text": "x"}, [1], [{"type": "text"}]])
        else:
            body["max_tokens"] = rng.choice(["many", -5, 1e12, None])


def _unknown_role(body: dict[str, Any], rng: random.Random) -> None:
    if (m := _pick(body, rng)) is not None:
        m["role"] = rng.choice(["wizard", "", "SYSTEM", "system", "tool", "function", "model"])


def _unknown_part(body: dict[str, Any], rng: random.Random) -> None:
    if (m := _pick(body, rng)) is not None:
        part = rng.choice([{"type": "hologram", "data": 1}, {"type": None}, {"no_type": True}, {"type": "text"}])
        content = m.get("content")
        m["content"] = ([*content, part] if isinstance(content, list) else [part]) if rng.random() < 0.7 else [part]


def _null_content(body: dict[str, Any], rng: random.Random) -> None:
    for _ in range(rng.randint(1, 3)):
        if (m := _pick(body, rng)) is not None:
            m["content"] = rng.choice([None, "", [], [None], [{"type": "text", "text": None}], [""]])


def _tool_ids(body: dict[str, Any], rng: random.Random) -> None:
    ids: list[tuple[dict[str, Any], str]] = []
    for t in _turns(body):
        if not isinstance(t, dict):
            continue
        for call in t.get("tool_calls") or []:
            if isinstance(call, dict):
                ids.append((call, "id"))
        if "tool_call_id" in t:
            ids.append((t, "tool_call_id"))
        if "call_id" in t:
            ids.append((t, "call_id"))
        content = t.get("content")
        for block in content if isinstance(content, list) else []:
            if isinstance(block, dict) and block.get("type") in ("tool_use", "tool_result"):
                ids.append((block, "id" if block["type"] == "tool_use" else "tool_use_id"))
    if not ids:
        return
    for _ in range(rng.randint(1, 3)):
        holder, key = rng.choice(ids)
        holder[key] = rng.choice([None, 17, "", "dup_0001", "call_" + "x" * rng.randint(1, 300), ["id"]])


def _orphan(body: dict[str, Any], rng: random.Random) -> None:
    turns = _turns(body)
    calls = [
        k
        for k, t in enumerate(turns)
        if isinstance(t, dict)
        and (t.get("tool_calls") or t.get("type") == "function_call" or _has_block(t, "tool_use"))
    ]
    if calls:
        del turns[rng.choice(calls)]
    elif turns:
        turns.insert(rng.randrange(len(turns) + 1), {"role": "tool", "tool_call_id": "ghost", "content": "orphan"})


def _has_block(t: dict[str, Any], kind: str) -> bool:
    content = t.get("content")
    return isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == kind for b in content)


_BAD_URLS = [
    "data:image/png;base64,%%%not-base64%%%",
    "data:image/png;base64,iVBORw0KGgo",  # truncated PNG header
    "data:image/jpeg;base64,",
    "data:;base64,AAAA",
    "data:image/png,not-base64-at-all",
    "data:image/gif;base64," + "R0lGODlh" + "A" * 5000,
    "http://127.0.0.1:1/none.png",
]


def _bad_data_url(body: dict[str, Any], rng: random.Random) -> None:
    if (m := _pick(body, rng)) is None:
        return
    url = rng.choice(_BAD_URLS)
    if "input" in body:
        part: dict[str, Any] = {"type": "input_image", "image_url": url, "detail": rng.choice(["auto", 5, None])}
    elif body.get("model", "").startswith("claude"):
        part = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": url.split(",")[-1]}}
    else:
        part = {"type": "image_url", "image_url": rng.choice([{"url": url, "detail": "high"}, url, {"url": None}])}
    m["content"] = [part] if not isinstance(m.get("content"), list) else [*m["content"], part]
    m.setdefault("role", "user")


def _surrogates(body: dict[str, Any], rng: random.Random) -> None:
    if (m := _pick(body, rng)) is not None:
        text = rng.choice(["\ud800", "a\udfffb", "\udc00\ud800", "x" * 50 + "\ud83d"])
        content = m.get("content")
        m["content"] = (content + text) if isinstance(content, str) else text


def _huge(body: dict[str, Any], rng: random.Random) -> None:
    if (m := _pick(body, rng)) is not None:
        m["content"] = rng.choice(["word ", "x", "ab12 /path/"]) * (HUGE_CHARS // 5)


def _deep(body: dict[str, Any], rng: random.Random) -> None:
    if (m := _pick(body, rng)) is not None:
        depth = rng.choice([50, 400, DEEP])
        deep = _nested(depth) if depth < DEEP else DEEP_MARK
        if rng.random() < 0.5:
            m["content"] = [{"type": "hologram", "data": deep}]
        else:
            m["tool_calls"] = [{"id": "deep", "type": "function", "function": {"name": "f", "arguments": deep}}]


def _unknown_model(body: dict[str, Any], rng: random.Random) -> None:
    body["model"] = rng.choice(["no-such-model", "", "gpt-4o-mini ", "../../etc/passwd"])


def _unknown_fields(body: dict[str, Any], rng: random.Random) -> None:
    body[rng.choice(["frobnicate", "metadata", "litellm_metadata"])] = rng.choice(
        [{"ctx_hook_disable": "maybe"}, 5, []]
    )
    if (m := _pick(body, rng)) is not None:
        m["x_unknown"] = {"nested": [1, 2, 3]}


MUTATIONS: dict[str, tuple[float, Callable[[dict[str, Any], random.Random], None]]] = {
    # name: (weight, mutate in place)
    "wrong_type": (3, _wrong_type),
    "unknown_role": (2, _unknown_role),
    "unknown_part": (2, _unknown_part),
    "null_content": (2, _null_content),
    "tool_ids": (3, _tool_ids),
    "orphan_result": (2, _orphan),
    "bad_data_url": (2, _bad_data_url),
    "lone_surrogate": (1.5, _surrogates),
    "deep_nesting": (0.5, _deep),
    "unknown_model": (1, _unknown_model),
    "unknown_fields": (1, _unknown_fields),
    "huge_string": (0.06, _huge),
}
VALID_SHARE = 0.3  # bodies sent as they are (valid conversations, streamed or not)


def cases(n: int, seed: int = SEED) -> Iterator[Case]:
    """``n`` bodies, routes in turn, deterministic for ``seed``."""
    rng = random.Random(seed)
    chats, sessions = seed_conversations()
    names = list(MUTATIONS)
    weights = [MUTATIONS[m][0] for m in names]
    routes = list(ROUTES)
    for i in range(n):
        route = routes[i % len(routes)]
        body = valid_body(route, rng, chats, sessions)
        applied: list[str] = []
        if rng.random() >= VALID_SHARE:
            for name in sorted(set(rng.choices(names, weights, k=rng.choice([1, 1, 1, 2, 3])))):
                MUTATIONS[name][1](body, rng)
                applied.append(name)
        if body.get("stream"):
            applied.append("stream")
        yield Case(i, route, body, tuple(applied) or ("valid",))
