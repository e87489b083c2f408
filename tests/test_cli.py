"""``litellm-ctx``: analyze, condense, stats; bad files get one line and exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support import anthropic_body, needs_evaldata, openai_chat, responses_body
from typer.testing import CliRunner

from bench import evaldata
from litellm_ctx_hook.cli import app

runner = CliRunner()


def write(tmp_path: Path, name: str, value: object) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(value) if not isinstance(value, str) else value)
    return path


@pytest.mark.parametrize(
    ("payload", "fmt"),
    [({"messages": openai_chat(3)}, "openai"), (anthropic_body(3), "anthropic"), (responses_body(3), "responses")],
)
def test_analyze_autodetects_each_format(tmp_path: Path, payload: object, fmt: str) -> None:
    result = runner.invoke(app, ["analyze", str(write(tmp_path, "c.json", payload)), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert rows[0]["format"] == fmt
    assert rows[0]["tokens"] > 0
    assert rows[0]["risk"] == "SAFE"


def test_analyze_table_and_limit(tmp_path: Path) -> None:
    path = write(tmp_path, "c.json", openai_chat(20))
    result = runner.invoke(app, ["analyze", str(path), "--max-tokens", "1000"])
    assert result.exit_code == 0
    assert "OVERFLOW" in result.output
    assert "EMERGENCY" in result.output
    assert "TRUNCATION" in result.output  # folded over two lines in a narrow terminal


def test_condense_shows_what_changes(tmp_path: Path) -> None:
    path = write(tmp_path, "c.json", {"messages": openai_chat(40, words=5)})
    result = runner.invoke(app, ["condense", str(path), "--max-tokens", "2000", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)[0]
    assert out["tokens_after"] <= 2000 < out["tokens_before"]
    assert any(a.startswith(("condense", "clear")) for a in out["metadata"]["actions"])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"hello": 1}', "without 'messages' or 'input'"),
        ('[{"role": "robot", "content": "x"}]', "robot"),
        ("42", "not a request body"),
    ],
)
def test_bad_files_exit_2_with_one_line(tmp_path: Path, content: str, message: str) -> None:
    result = runner.invoke(app, ["analyze", str(write(tmp_path, "bad.json", content))])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) <= 2


def test_missing_file_and_bad_format(tmp_path: Path) -> None:
    assert runner.invoke(app, ["analyze", str(tmp_path / "nope.json")]).exit_code == 2
    path = write(tmp_path, "c.json", openai_chat(1))
    result = runner.invoke(app, ["analyze", str(path), "--format", "yaml"])
    assert result.exit_code == 2
    assert "unknown format" in result.output


@needs_evaldata
def test_analyze_evaldata_jsonl() -> None:
    result = runner.invoke(app, ["analyze", str(evaldata.CLAUDE), "--model", "anthropic/claude-opus-4-6", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert len(rows) == 13
    # text-only sessions are valid in both formats; every session with tool blocks is detected as Anthropic
    assert sum(r["format"] == "anthropic" for r in rows) >= 10
    assert all(r["tokenizer"] == "claude" for r in rows)


def test_stats_json() -> None:
    result = runner.invoke(app, ["stats", "--json"])
    assert result.exit_code == 0
    assert "cache_hit_ratio" in json.loads(result.output)
