"""Claude Code, Codex CLI and opencode, headless, reading log files through the proxy with the plugin.

Each session reads ~5k-token log files one after another (the scripted upstream asks for the next
file once the newest tool result holds the previous one whole), then answers. The proxy window is
smaller than the session: the plugin has to make room on every turn. Checked per session: the client
exits 0; every file was read, none twice; no request was refused (by the upstream's provider checks:
tool call pairing, cache_control blocks, input + output within the window, thinking blocks; or by the
proxy); the newest tool result reached the upstream whole in every request; nothing but loopback was
contacted. The share of the notes' identifiers still visible in the last request is reported beside
what ``trim_messages`` keeps at the same size, and asserted where given. ``CTX_AGENTS_REPORT=<file>``
appends each session's row there as a JSON line; ``CTX_AGENT_TIMEOUT`` (s, default 240) bounds a session.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from e2e.clients.sessions import REPORTS, agent_unavailable, alias
from e2e.proxy import ProxyProcess

from litellm_ctx_hook.testing.agent_report import (
    SessionReport,
    input_room,
    proxy_client_errors,
    share,
    trim_baseline,
)
from litellm_ctx_hook.testing.agent_workspace import seed_workspace
from litellm_ctx_hook.testing.agents import CLAUDE_CODE, CODEX, OPENCODE, Agent, AgentTarget, run_agent
from litellm_ctx_hook.testing.provider_upstream import ScriptedUpstream

pytestmark = [pytest.mark.agents, pytest.mark.redis]

TASK = (
    "Read the log files under logs/ one at a time, in order (ingest-01.log, ingest-02.log, ...), each whole. "
    "Then list the ticket id of every reviewer note you saw."
)


@dataclass(frozen=True)
class Case:
    agent: Agent
    window: int
    reads: int
    needle_floor: float | None = None  # least share of needles visible at the end, where asserted

    @property
    def id(self) -> str:
        return f"{self.agent.name}-{self.window // 1000}k"


# At 64k and 128k (and Claude Code's 72k) at least 90% of the notes must still be visible at the end.
CASES = [
    # Claude Code asks max_tokens 32000: at 72k its ~21k pinned head is over half the 40k input room.
    Case(CLAUDE_CODE, 72_000, 10, 0.9),
    Case(CLAUDE_CODE, 64_000, 10, 0.9),
    Case(CLAUDE_CODE, 128_000, 20, 0.9),
    # Codex sends no max_output_tokens (the plugin reserves a tenth of the window): at 11k its ~5.3k head
    # is over half the ~9.9k room, and the head with the newest ~4.2k result just fits.
    Case(CODEX, 11_000, 6),
    Case(CODEX, 64_000, 20, 0.9),
    Case(CODEX, 128_000, 36, 0.9),
    # opencode asks the 4096 output tokens its model entry allows: at 16k its ~6.3k head is over half the room.
    Case(OPENCODE, 16_000, 6),
    Case(OPENCODE, 64_000, 18, 0.9),
    Case(OPENCODE, 128_000, 34, 0.9),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_agent_session(
    case: Case,
    agent_binaries: dict[str, Any],
    agents_proxy: ProxyProcess,
    scripted_upstream: ScriptedUpstream,
    tmp_path: Path,
) -> None:
    binary = agent_binaries[case.agent.name]
    if isinstance(binary, Exception):
        agent_unavailable(f"{case.agent.package}@{case.agent.version} unavailable: {binary}")
    workspace = seed_workspace(tmp_path / "work", case.reads, seed=case.window + case.reads)
    scripted_upstream.reset(workspace, window=case.window)
    log_start = len(agents_proxy.log_text())
    target = AgentTarget(agents_proxy.base_url, agents_proxy.master_key, alias(case.agent, case.window), case.window)
    run = run_agent(
        case.agent,
        binary,
        target,
        workspace.root,
        TASK,
        home=tmp_path / "home",
        max_turns=3 * case.reads + 6,
        timeout_s=float(os.environ.get("CTX_AGENT_TIMEOUT", "240")),
    )
    refused = proxy_client_errors(agents_proxy.log_text()[log_start:])
    first, last = scripted_upstream.first_turn(), scripted_upstream.last_turn()
    report = SessionReport(
        client=case.agent.name,
        window=case.window,
        exit_code=run.exit_code,
        files=case.reads,
        reads_done=scripted_upstream.reads_done,
        requests=len(scripted_upstream.turns),
        side_requests=scripted_upstream.side_requests,
        rejected=len(scripted_upstream.rejections) + len(refused),
        newest_cut=scripted_upstream.newest_cut,
        rereads=scripted_upstream.rereads,
        needles_ours=share(last.needles_seen, workspace) if last else 0.0,
        needles_trim=trim_baseline(scripted_upstream, TASK),
        last_tokens=last.tokens if last else 0,
        head_tokens=first.tokens if first else 0,
        room=input_room(first.body, case.window) if first else case.window,
        wall_s=run.wall_s,
        egress=len(run.egress),
    )
    REPORTS.append(report)
    print(report.row())
    if os.environ.get("CTX_AGENTS_REPORT"):  # one JSON line per session, for tables elsewhere
        with Path(os.environ["CTX_AGENTS_REPORT"]).open("a", encoding="utf-8") as out:
            out.write(report.to_json() + "\n")
    context = f"{report.row()}\n{run.tail()}"

    assert run.exit_code == 0, context
    assert not run.egress, f"the client tried to reach beyond loopback: {run.egress}"
    assert not scripted_upstream.rejections, f"{scripted_upstream.rejections[:3]}\n{context}"
    assert not refused, f"the proxy refused: {refused[:3]}\n{context}"
    assert report.newest_cut == 0, f"the newest tool result was cut in {report.newest_cut} request(s)\n{context}"
    assert report.reads_done == case.reads, context
    assert report.rereads == 0, context
    assert scripted_upstream.finished, context
    assert all(t.streamed for t in scripted_upstream.turns), "every turn of the session was streamed"
    if case.needle_floor is not None:
        assert report.needles_ours >= case.needle_floor, context
