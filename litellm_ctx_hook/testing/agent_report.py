"""What an agent session through the proxy came to: one row per session, and the plain-trimming baseline.

The needle share is the fraction of the workspace's note identifiers still present in the last
request the upstream received. The baseline is what ``litellm.utils.trim_messages`` keeps of the
same session, uncondensed (system text, task, each read as a tool call and the whole result the
client sent), trimmed to the size of the text of that last request (tool definitions left out on
both sides, both counted by LiteLLM's counter for ``TRIM_MODEL``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from .agent_workspace import Workspace
from .provider_checks import body_text, text_of
from .provider_upstream import ScriptedUpstream

TRIM_MODEL = "gpt-4o"  # o200k_base counts, the base of the plugin's counts for every family
_ACCESS = re.compile(r'"(?:POST|GET) (\S+) HTTP/[\d.]+" (\d{3})')


@dataclass(frozen=True, slots=True)
class SessionReport:
    client: str
    window: int
    exit_code: int | None
    files: int
    reads_done: int
    requests: int  # the session's own model calls that reached the upstream
    side_requests: int
    rejected: int  # 4xx from the upstream (checks) or the proxy
    newest_cut: int
    rereads: int
    needles_ours: float
    needles_trim: float
    last_tokens: int
    head_tokens: int  # the first request (system, tools, task): what every later request pins
    room: int  # the window less the output the client reserves (the plugin's limit)
    wall_s: float
    egress: int  # attempts to reach anything but loopback

    def row(self) -> str:
        code = "timeout" if self.exit_code is None else str(self.exit_code)
        return (
            f"| {self.client} | {self.window // 1000}k | {code} | {self.reads_done}/{self.files} | {self.requests} "
            f"| {self.rejected} | {self.newest_cut} | {self.rereads} | {self.needles_ours:.0%} "
            f"| {self.needles_trim:.0%} | {self.head_tokens / self.room:.0%} | {self.last_tokens} "
            f"| {self.wall_s:.0f} s |"
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self))


HEADER = (
    "| client | window | exit | reads | requests | rejected | newest cut | re-reads | needles (ours) "
    "| needles (trim_messages) | head / room | last request tokens | wall |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def input_room(body: Mapping[str, Any], window: int) -> int:
    """The window less the output the request reserves (as the plugin reckons it when none is asked)."""
    for key in ("max_tokens", "max_output_tokens", "max_completion_tokens"):
        value = body.get(key)
        if isinstance(value, int) and value > 0:
            return window - value
    return window - min(4096, window // 10)


def proxy_client_errors(log_text: str) -> list[str]:
    """The proxy's access-log lines answered 4xx (what the client was refused)."""
    return [m.group(0) for m in _ACCESS.finditer(log_text) if m.group(2).startswith("4")]


def _system_text(body: Mapping[str, Any]) -> str:
    parts = [text_of(body.get("system")), text_of(body.get("instructions"))]
    raw = body.get("messages", body.get("input"))
    for item in raw if isinstance(raw, list) else []:
        if isinstance(item, Mapping) and item.get("role") in ("system", "developer"):
            parts.append(text_of(item.get("content")))
    return "\n".join(p for p in parts if p)


def uncondensed_session(system: str, task: str, results: Sequence[str]) -> list[dict[str, Any]]:
    """The session as chat messages, nothing condensed: each read a tool call and its whole result."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}, {"role": "user", "content": task}]
    for i, result in enumerate(results):
        call = {"id": f"call_{i}", "type": "function", "function": {"name": "read", "arguments": "{}"}}
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        messages.append({"role": "tool", "tool_call_id": f"call_{i}", "content": result})
    return messages


def as_chat_text(body: Mapping[str, Any]) -> list[dict[str, str]]:
    """Any of the three formats as plain chat messages of their text (tool definitions left out)."""
    out = [{"role": "system", "content": _system_text(body)}]
    raw = body.get("messages", body.get("input"))
    for item in raw if isinstance(raw, list) else [raw] if isinstance(raw, str) else []:
        if isinstance(item, Mapping) and item.get("role") in ("system", "developer"):
            continue
        role = str(item.get("role") or "tool") if isinstance(item, Mapping) else "user"
        out.append({"role": role if role in ("user", "assistant") else "tool", "content": text_of(item)})
    return [m for m in out if m["content"]]


def trim_baseline(upstream: ScriptedUpstream, task: str) -> float:
    """Share of needles ``trim_messages`` keeps of the uncondensed session at the last request's size.

    Both sizes are counted the same way (LiteLLM's counter for ``TRIM_MODEL``, over the messages' text).
    """
    from litellm import token_counter
    from litellm.utils import trim_messages

    last = upstream.last_turn()
    workspace = upstream.workspace
    if last is None or workspace is None:
        return 0.0
    budget = token_counter(model=TRIM_MODEL, messages=as_chat_text(last.body))
    messages = uncondensed_session(_system_text(last.body), task, upstream.whole_results())
    # trim_messages keeps trailing tool messages whole and outside its count: count them here
    tail = token_counter(model=TRIM_MODEL, messages=messages[-1:]) if messages[-1]["role"] == "tool" else 0
    trimmed = trim_messages(messages, model=TRIM_MODEL, trim_ratio=1.0, max_tokens=max(1, budget - tail))
    text = body_text(trimmed)
    return share(tuple(n for n in workspace.needle_ids if n in text), workspace)


def share(seen: Sequence[str], workspace: Workspace) -> float:
    return len(set(seen)) / len(workspace.files) if workspace.files else 0.0
