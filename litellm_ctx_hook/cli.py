"""``litellm-ctx``: analyse and condense conversation files, show live stats, run the demo.

The only module that imports the CLI libraries (typer, rich).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from .adapters import detect_format
from .conversation import Format
from .engine.engine import ContextEngine
from .errors import ContextHookError
from .settings import default_settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
out = Console()
err = Console(stderr=True)

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Target model (LiteLLM name); sets tokenizer and window.")]
FormatOpt = Annotated[
    str | None, typer.Option("--format", "-f", help="openai | anthropic | responses (default: auto-detect)")
]
LimitOpt = Annotated[
    int | None, typer.Option("--max-tokens", help="Context limit to manage to (overrides the model's window).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


class BadFile(ContextHookError):
    """The input file cannot be read as conversations."""


def _bodies(value: Any, name: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if isinstance(value, Mapping):
        if isinstance(value.get("traj"), list):  # tau-bench run
            yield name, {"messages": value["traj"]}
        elif any(k in value for k in ("messages", "input")):
            yield name, value
        else:
            raise BadFile(f"{name}: an object without 'messages' or 'input'")
    elif (
        isinstance(value, list)
        and value
        and all(isinstance(v, Mapping) and ("role" in v or "type" in v) for v in value)
    ):
        yield name, {"messages": value}
    elif isinstance(value, list):
        for k, item in enumerate(value):
            yield from _bodies(item, f"{name}[{k}]")
    else:
        raise BadFile(f"{name}: not a request body, a message list or a list of conversations")


def load_conversations(path: Path) -> list[tuple[str, Mapping[str, Any]]]:
    """Request bodies from a JSON file (body, message list, list of runs) or a JSONL file (one per line)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadFile(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise BadFile(f"{path} is not UTF-8 text") from None
    try:
        if path.suffix == ".jsonl":
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
            found = [b for k, row in enumerate(rows) for b in _bodies(row, _row_name(row, k))]
        else:
            found = list(_bodies(json.loads(text), path.name))
    except json.JSONDecodeError as exc:
        raise BadFile(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg})") from None
    if not found:
        raise BadFile(f"{path} holds no conversation")
    return found


def _row_name(row: Any, k: int) -> str:
    if isinstance(row, Mapping):
        for key in ("session_id", "instance_id", "task_id", "name", "id"):
            if isinstance(row.get(key), str | int):
                return str(row[key])
    return f"line {k + 1}"


def _format_of(body: Mapping[str, Any], fmt: str | None) -> Format:
    return Format(fmt) if fmt else detect_format(body)


def _fail(message: str) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(2)


@app.command()
def analyze(
    file: Annotated[Path, typer.Argument(help="JSON request body / conversation, or JSONL of conversations")],
    model: ModelOpt = "gpt-4o",
    format: FormatOpt = None,
    max_tokens: LimitOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Count tokens and show the risk of each conversation in FILE."""
    try:
        if format is not None and format not in {f.value for f in Format}:
            raise BadFile(f"unknown format {format!r}: use openai, anthropic or responses")
        engine = ContextEngine(default_settings())
        rows = []
        for name, body in load_conversations(file):
            fmt = _format_of(body, format)
            a = engine.analyze(body, fmt, model, limit=max_tokens)
            r = a.result
            rows.append(
                {
                    "name": name,
                    "format": fmt.value,
                    "messages": r.messages_count,
                    "tokens": r.current_tokens,
                    "window": a.target.window,
                    "limit": r.limit_tokens,
                    "utilization_percent": round(r.utilization_percent, 1),
                    "risk": r.risk_level.value,
                    "strategy": r.recommended_strategy.value,
                    "tokenizer": a.count.family.value,
                    "exact": a.count.exact,
                }
            )
    except ContextHookError as exc:
        _fail(str(exc))
        return
    if as_json:
        out.print_json(json.dumps(rows))
        return
    table = Table(title=f"{file.name} — model {model}")
    for col in ("name", "format", "messages", "tokens", "limit", "util %", "risk", "strategy"):
        table.add_column(
            col, justify="right" if col in ("messages", "tokens", "limit", "util %") else "left", overflow="fold"
        )
    for row in rows:
        table.add_row(
            str(row["name"]),
            str(row["format"]),
            str(row["messages"]),
            f"{row['tokens']:,}",
            f"{row['limit']:,}",
            f"{row['utilization_percent']:.1f}",
            str(row["risk"]),
            str(row["strategy"]),
        )
    out.print(table)


@app.command()
def condense(
    file: Annotated[Path, typer.Argument(help="JSON request body / conversation, or JSONL of conversations")],
    model: ModelOpt = "gpt-4o",
    format: FormatOpt = None,
    max_tokens: LimitOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show what management would do to each conversation in FILE (nothing is written)."""
    try:
        engine = ContextEngine(default_settings())
        results = []
        for name, body in load_conversations(file):
            fmt = _format_of(body, format)
            outcome = asyncio.run(engine.manage(body, fmt, model, limit=max_tokens))
            results.append((name, fmt, body, outcome))
    except ContextHookError as exc:
        _fail(str(exc))
        return
    if as_json:
        out.print_json(
            json.dumps(
                [
                    {
                        "name": n,
                        "format": f.value,
                        "tokens_before": o.tokens_before,
                        "tokens_after": o.tokens_after,
                        "strategy": o.strategy.value,
                        "risk": o.risk.value,
                        "metadata": o.metadata,
                        "request": o.body,
                    }
                    for n, f, _, o in results
                ],
                default=str,
            )
        )
        return
    for name, fmt, body, o in results:
        out.rule(f"{name}: {o.risk.value} {o.tokens_before:,} → {o.tokens_after:,} tokens ({o.strategy.value})")
        key = "input" if fmt is Format.RESPONSES else "messages"
        before_value, after_value = body.get(key), o.body.get(key)
        before: list[Any] = before_value if isinstance(before_value, list) else []
        after: list[Any] = after_value if isinstance(after_value, list) else []
        kept = {id(m) for m in after}
        for k, m in enumerate(before):
            mark, style = ("  ", "dim") if id(m) in kept else ("- ", "red")
            out.print(f"{mark}[{k}] {_preview(m)}", style=style, highlight=False)
        for m in after:
            if not any(m is b for b in before):
                out.print(f"+ {_preview(m)}", style="green", highlight=False)


def _preview(message: Any, width: int = 110) -> str:
    text = json.dumps(message, ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


@app.command()
def stats(as_json: JsonOpt = False) -> None:
    """Shared statistics from Redis (REDIS_URL) and this process's counters."""
    from .api import get_context_performance_stats

    data = get_context_performance_stats()
    if as_json:
        out.print_json(json.dumps(data, default=str))
        return
    table = Table(title="litellm-ctx-hook stats")
    table.add_column("stat")
    table.add_column("value", justify="right")
    for key, value in data.items():
        table.add_row(key, json.dumps(value, default=str) if isinstance(value, dict) else str(value))
    out.print(table)


@app.command()
def health(
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="The proxy's config.yaml: are the summariser aliases served?")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check Redis, the summariser aliases and the shared counters. Exit 0 healthy, 1 degraded, 2 unhealthy."""
    from .proxy.health import Status, check_health

    try:
        report = asyncio.run(check_health(default_settings(), config))
    except ContextHookError as exc:
        _fail(str(exc))
        return
    if as_json:
        out.print_json(json.dumps(report.to_json()))
    else:
        table = Table(title="litellm-ctx-hook health")
        for col in ("check", "status", "details"):
            table.add_column(col, overflow="fold")
        for name, check in report.checks.items():
            details = {k: v for k, v in check.items() if k != "status"}
            table.add_row(name, check["status"], json.dumps(details))
        out.print(table)
        for rec in report.recommendations:
            out.print(f"- {rec}", highlight=False, soft_wrap=True)
    if report.status is not Status.HEALTHY:
        typer.echo(report.summary_line(), err=True)
    raise typer.Exit(report.status.exit_code)


@app.command()
def demo(
    short: Annotated[bool, typer.Option("--short", help="A short run (used by the test suite and CI).")] = False,
) -> None:
    """Replay a generated agent session through a local proxy with the plugin and show each turn."""
    from .demo.run import run_demo

    raise typer.Exit(run_demo(short=short, console=out))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
