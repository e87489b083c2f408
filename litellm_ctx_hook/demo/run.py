"""``litellm-ctx demo``: a real proxy with the plugin, a fake upstream, a generated agent session.

Starts a fake OpenAI/Anthropic-compatible upstream and ``litellm --config config.yaml`` with the
plugin, replays a long agent session turn by turn through the proxy with the official OpenAI SDK
(the client sends its whole history every turn, as agents do), and prints what reached the
upstream. Offline, no Redis needed (``REDIS_URL`` is used when set). Stops what it started, also
on Ctrl-C.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ..adapters import adapter_for
from ..analysis.counting import TokenCounter
from ..settings import load_settings
from ..testing.fake_upstream import FakeUpstream, is_summarizer_call
from ..testing.proxy import REPO_ROOT, start_proxy
from ..testing.session import generate_session, turns_of

MODEL = "small"  # the 16k-window alias of config.yaml
SHORT = {
    "MONITOR_ONLY": "-",
    "CONDENSATION_LIGHT": "light",
    "CONDENSATION_AGGRESSIVE": "aggressive",
    "EMERGENCY_TRUNCATION": "truncate",
}
DEFAULT_CONFIG = REPO_ROOT / "config.yaml"


def run_demo(*, short: bool = False, console: Console, config: Path | None = None) -> int:
    import openai

    config = config or (Path.cwd() / "config.yaml" if (Path.cwd() / "config.yaml").exists() else DEFAULT_CONFIG)
    if not config.exists():
        console.print(f"[red]error:[/red] no config.yaml found (looked in {Path.cwd()} and {REPO_ROOT})")
        return 2
    body = generate_session(turns=28 if short else 70)
    requests = turns_of(body)
    counter = TokenCounter(load_settings())
    openai_format = adapter_for("openai")
    with FakeUpstream() as upstream:
        env = {
            "FAKE_UPSTREAM_URL": upstream.url + "/v1",
            "FAKE_UPSTREAM_ROOT": upstream.url,
            "CONDENSATION_MODEL": os.environ.get("CONDENSATION_MODEL", "summarizer"),
            # the fake summariser echoes identifiers only: accept its summaries
            "CONDENSATION_QUALITY_THRESHOLD": os.environ.get("CONDENSATION_QUALITY_THRESHOLD", "0.5"),
        }
        console.print(f"starting litellm --config {config} with the plugin (takes ~10 s) …")
        with start_proxy(config, env) as proxy:
            client = openai.OpenAI(base_url=proxy.base_url + "/v1", api_key=proxy.master_key, max_retries=0)
            table = Table(title=f"{len(requests)} requests of a generated agent session → model {MODEL!r} (16k window)")
            for col in ("turn", "msgs", "client tokens", "upstream tokens", "risk", "action", "cache"):
                table.add_column(col, justify="left" if col in ("risk", "action", "cache") else "right")
            rows: list[dict[str, Any]] = []
            for k, request in enumerate(requests, 1):
                upstream.clear()
                raw = client.chat.completions.with_raw_response.create(
                    model=MODEL, messages=request["messages"], tools=request["tools"], max_tokens=512
                )
                raw.parse()
                sent = [r.body for r in upstream.requests_to("/chat/completions") if not is_summarizer_call(r.body)]
                summaries = len(upstream.requests) - len(sent)
                client_tokens = counter.count(openai_format.parse(request), "gpt-4o-mini").total
                upstream_tokens = counter.count(openai_format.parse(sent[-1]), "gpt-4o-mini").total
                risk = str(raw.headers.get("x-ctx-risk-level", "?"))
                action = SHORT.get(str(raw.headers.get("x-ctx-strategy", "")), "?") + (" +summary" if summaries else "")
                cache = str(raw.headers.get("x-ctx-cache", "?"))
                row = {
                    "turn": k,
                    "messages": len(request["messages"]),
                    "client": client_tokens,
                    "upstream": upstream_tokens,
                    "risk": risk,
                    "action": action,
                    "cache": cache,
                }
                rows.append(row)
                table.add_row(
                    str(k),
                    str(row["messages"]),
                    f"{client_tokens:,}",
                    f"{upstream_tokens:,}",
                    risk,
                    action,
                    cache,
                )
            console.print(table)
    managed = sum(1 for r in rows if r["upstream"] < r["client"])
    summaries = sum(1 for r in rows if "+summary" in r["action"])
    biggest = max(r["client"] for r in rows)
    console.print(
        f"{len(rows)} requests, {managed} managed, {summaries} summariser calls; the client's history grew to "
        f"{biggest:,} tokens, the upstream never got more than {max(r['upstream'] for r in rows):,}."
    )
    return 0
