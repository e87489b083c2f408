"""Read the real conversations in ``../shared/evaldata`` (never copied into this repository).

Used by the benchmarks and by the data-driven tests, which skip when the folder is absent.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(os.environ.get("CTX_EVALDATA", Path(__file__).resolve().parents[1].parent / "shared" / "evaldata"))
CLAUDE = ROOT / "claude_code" / "anthropic_sessions.jsonl"
TAU = ROOT / "openai_agents" / "tau_bench_gpt-4o-airline.json"
SWEGYM = ROOT / "openai_agents" / "swegym_openhands_gpt-4o_sample5.json"
GEMINI = ROOT / "openai_agents" / "mini_swe_agent_gemini-3-pro_swebv_half.jsonl"
GEMINI_TOOLS = ROOT / "openai_agents" / "mini_swe_agent_gemini-3-pro_swebv_half.openai_tool_calls.jsonl"
BEAM = ROOT / "conversations" / "beam_100k.jsonl"
REALTALK = ROOT / "conversations" / "realtalk"


def available() -> bool:
    return CLAUDE.exists() and TAU.exists()


def chats_available() -> bool:
    """Whether the chat data sets (BEAM, REALTALK) are present."""
    return BEAM.exists() and REALTALK.is_dir()


@dataclass(frozen=True)
class Sample:
    """One real conversation as a request body of its format."""

    name: str
    format: str  # "openai" | "anthropic"
    body: dict[str, Any]
    model: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def messages(self) -> list[dict[str, Any]]:
        msgs: list[dict[str, Any]] = self.body["messages"]
        return msgs


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open() as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


def claude_sessions() -> Iterator[Sample]:
    for row in _jsonl(CLAUDE):
        model = row["models"][-1] if row.get("models") else "claude-opus-4-6"
        yield Sample(
            f"claude:{row['session_id'][:8]}",
            "anthropic",
            {"model": model, "max_tokens": 4096, "messages": row["messages"]},
            f"anthropic/{model}",
            {"compactions": row.get("compactions", []), "is_subagent": row.get("is_subagent")},
        )


def tau_runs() -> Iterator[Sample]:
    for k, run in enumerate(json.loads(TAU.read_text())):
        yield Sample(
            f"tau:{run['task_id']}:{run.get('trial', 0)}:{k}",
            "openai",
            {"model": "gpt-4o", "messages": run["traj"]},
            "gpt-4o",
        )


def swegym_runs() -> Iterator[Sample]:
    for run in json.loads(SWEGYM.read_text()):
        yield Sample(
            f"swegym:{run['instance_id']}",
            "openai",
            {"model": "gpt-4o", "messages": run["messages"], "tools": run.get("tools") or []},
            "gpt-4o",
        )


def gemini_runs(tool_calls: bool = False) -> Iterator[Sample]:
    for run in _jsonl(GEMINI_TOOLS if tool_calls else GEMINI):
        body: dict[str, Any] = {"model": "gemini-3-pro", "messages": run["messages"]}
        if tool_calls and run.get("tools"):
            body["tools"] = run["tools"]
        yield Sample(f"gemini:{run['instance_id']}", "openai", body, "gemini/gemini-3-pro-preview")


def all_samples() -> Iterator[Sample]:
    yield from claude_sessions()
    yield from tau_runs()
    yield from swegym_runs()
    yield from gemini_runs()
    yield from gemini_runs(tool_calls=True)


def beam_chats() -> Iterator[dict[str, Any]]:
    """The BEAM 100k chats as stored: ``{id, topic, messages, questions}``."""
    yield from _jsonl(BEAM)


def realtalk_chats() -> Iterator[tuple[str, dict[str, Any]]]:
    """The REALTALK chats as stored, with their file names (``Chat_1_Emi_Elise``, ...)."""
    for path in sorted(REALTALK.glob("Chat_*.json")):
        yield path.stem, json.loads(path.read_text())
