"""``litellm-ctx demo``: replay a generated agent session turn by turn and show what the plugin does."""

from __future__ import annotations

import asyncio

from rich.console import Console
from rich.table import Table

from ..conversation import Format
from ..engine import ContextEngine
from ..settings import load_settings
from .session import generate_session, turns_of

DEMO_WINDOW = 16_000


def run_demo(*, short: bool = False, console: Console) -> int:
    body = generate_session(turns=24 if short else 60)
    engine = ContextEngine(load_settings())
    table = Table(
        title=f"Replaying a {len(body['messages'])}-message agent session against a {DEMO_WINDOW:,}-token window"
    )
    for col in ("turn", "messages", "client tokens", "sent tokens", "risk", "action"):
        table.add_column(col, justify="right" if col != "action" and col != "risk" else "left")
    managed = 0
    for k, request in enumerate(turns_of(body), 1):
        outcome = asyncio.run(engine.manage(request, Format.OPENAI, "gpt-4o", limit=DEMO_WINDOW))
        managed += outcome.changed
        table.add_row(
            str(k),
            str(len(request["messages"])),
            f"{outcome.tokens_before:,}",
            f"{outcome.tokens_after:,}",
            outcome.risk.value,
            ", ".join(outcome.metadata.get("actions", [])) or "-",
        )
    console.print(table)
    console.print(f"{managed} of {len(turns_of(body))} requests were managed; every one fit the window.")
    return 0
