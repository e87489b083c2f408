"""What an agent session through the proxy came to: one row per session, and the plain-trimming baseline.

The needle share is the fraction of the workspace's note identifiers still present in the last
request the upstream received. The baseline is what ``litellm.utils.trim_messages`` keeps of the
same session, uncondensed (system text, task, each read as a tool call and the whole result the
client sent), trimmed to the size of that last request less its tool definitions.
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
    wall_s: float
    egress: int  # attempts to reach anything but loopback

    def row(self) -> str:
        code = "timeout" if self.exit_code is None else str(self.exit_code)
        return (
            f"| {self.client} | {self.window // 1000}k | {code} | {self.reads_done}/{self.files} | {self.requests} "
            f"| {self.rejected} | {self.newest_cut} | {self.rereads} | {self.needles_ours:.0%} "
            f"| {self.needles_trim:.0%} | {self.last_tokens} | {self.wall_s:.0f} s |"
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self))


HEADER = (
    "| client | window | exit | reads | requests | rejected | newest cut | re-reads | needles (ours) "
    "| needles (trim_messages) | last request tokens | wall |\n|---|---|---|---|---|---|---|---|---|---|---|---|"
)


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


def trim_baseline(upstream: ScriptedUpstream, task: str) -> float:
    """Share of needles ``trim_messages`` keeps of the uncondensed session at the last request's size."""
    from litellm import token_counter
    from litellm.utils import trim_messages

    last = upstream.last_turn()
    workspace = upstream.workspace
    if last is None or workspace is None:
        return 0.0
    tools = last.body.get("tools")
    tool_tokens = token_counter(model=TRIM_MODEL, text=json.dumps(tools)) if tools else 0
    budget = max(1, last.tokens - tool_tokens)
    messages = uncondensed_session(_system_text(last.body), task, upstream.whole_results())
    trimmed = trim_messages(messages, model=TRIM_MODEL, trim_ratio=1.0, max_tokens=budget)
    text = body_text(trimmed)
    return share(tuple(n for n in workspace.needle_ids if n in text), workspace)


def share(seen: Sequence[str], workspace: Workspace) -> float:
    return len(set(seen)) / len(workspace.files) if workspace.files else 0.0
