"""health: judging the facts (pure), reading a proxy config, and the CLI's exit codes and one line.

The checks against a live proxy's Redis are in ``e2e/test_operations_e2e.py``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support import settings as make_settings
from typer.testing import CliRunner

from litellm_ctx_hook.cli import app
from litellm_ctx_hook.proxy.health import (
    MIN_SAMPLES,
    ConfigFacts,
    RedisFacts,
    Status,
    check_health,
    evaluate,
    read_config,
)
from litellm_ctx_hook.proxy.shared_stats import bucket_field

UP = RedisFacts(configured=True, target="redis://r:6379/0", latency_ms=0.4, used_memory=10, maxmemory=1000)


def counters(**kw: int) -> RedisFacts:
    return RedisFacts(**{**UP.__dict__, "counters": kw})


def test_exit_codes_follow_the_status() -> None:
    assert [s.exit_code for s in Status] == [0, 1, 2]


def test_no_redis_is_healthy_with_a_recommendation() -> None:
    report = evaluate(make_settings(), RedisFacts(configured=False), None)
    assert report.status is Status.HEALTHY
    assert report.issues == []
    assert any("REDIS_URL" in r for r in report.recommendations)


def test_unreachable_redis_is_unhealthy_and_named_in_one_line() -> None:
    facts = RedisFacts(configured=True, target="redis://r:6379/0", error="ConnectionError: refused")
    report = evaluate(make_settings(), facts, None)
    assert report.status is Status.UNHEALTHY
    assert report.summary_line() == "unhealthy: Redis at redis://r:6379/0 is unreachable (ConnectionError: refused)"
    assert "counters" not in report.checks  # nothing to read them from


def test_slow_or_full_redis_is_degraded() -> None:
    slow = evaluate(make_settings(), RedisFacts(**{**UP.__dict__, "latency_ms": 120.0}), None)
    full = evaluate(make_settings(), RedisFacts(**{**UP.__dict__, "used_memory": 950}), None)
    assert slow.status is full.status is Status.DEGRADED
    assert "120 ms" in slow.issues[0]
    assert "95%" in full.issues[0]


def test_healthy_counters_report_their_ratios() -> None:
    facts = counters(
        requests=100,
        cache_hit=30,
        cache_miss=10,
        condensations=10,
        summarizer_calls=10,
        summarizer_failures=1,
        processing_ms_sum=2000,
        **{bucket_field(15): 100},
    )
    report = evaluate(make_settings(), facts, None)
    assert report.status is Status.HEALTHY, report.issues
    c = report.checks["counters"]
    assert c["cache_hit_ratio"] == 0.75
    assert c["condensation_success_rate"] == 1.0
    assert c["summarizer_failure_rate"] == 0.1
    assert c["avg_processing_ms"] == 20.0
    assert c["p95_processing_ms_at_most"] == 25.0


@pytest.mark.parametrize(
    ("kw", "words"),
    [
        ({"requests": 50, "cache_hit": 5, "cache_miss": 45}, "cache hit ratio 10%"),
        ({"requests": 50, "condensations": 10, "condensation_failures": 20}, "condensation success rate 33%"),
        ({"requests": 50, "summarizer_calls": 40, "summarizer_failures": 20}, "50% of 40 summariser calls failed"),
        ({"requests": 50, "rejected": 10}, "17% of requests rejected"),
        ({"requests": 50, bucket_field(4500): 50}, "p95 processing time up to 5000 ms"),
        ({"requests": 3, "errors": 1}, "1 internal faults"),
    ],
)
def test_each_counter_rule_degrades_with_an_issue_and_a_recommendation(kw: dict[str, int], words: str) -> None:
    report = evaluate(make_settings(), counters(**kw), None)
    assert report.status is Status.DEGRADED
    assert len(report.issues) == 1 and words in report.issues[0], report.issues
    assert report.recommendations[-1]


def test_ratios_over_too_few_events_are_not_judged() -> None:
    few = MIN_SAMPLES - 1
    report = evaluate(make_settings(), counters(requests=few, cache_hit=0, cache_miss=few), None)
    assert report.status is Status.HEALTHY
    assert report.checks["counters"]["cache_hit_ratio"] == 0.0


def write_config(tmp_path: Path, doc: dict[str, Any]) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(doc))  # JSON is YAML
    return path


CONFIG = {
    "model_list": [
        {"model_name": "gpt-4o", "litellm_params": {"model": "openai/gpt-4o"}},
        {
            "model_name": "claude",
            "litellm_params": {"model": "anthropic/claude-sonnet-4-5"},
            "model_info": {"ctx_hook": {"summarizer": "haiku"}},
        },
        {"model_name": "openai/*", "litellm_params": {"model": "openai/*"}},
    ],
    "litellm_settings": {"callbacks": ["litellm_ctx_hook.proxy_handler_instance", "prometheus"]},
}


def test_read_config_finds_models_callback_and_every_summariser_alias(tmp_path: Path) -> None:
    facts = read_config(write_config(tmp_path, CONFIG), make_settings(condensation_model="summarizer"))
    assert facts.model_names == ("gpt-4o", "claude", "openai/*")
    assert facts.hook_registered
    assert facts.summarizers == {
        "summarizer": "CONDENSATION_MODEL",
        "haiku": "model_info.ctx_hook.summarizer of claude",
    }


def test_unserved_summariser_alias_degrades_and_wildcards_serve() -> None:
    facts = ConfigFacts(
        "c.yaml", ("gpt-4o", "openai/*"), {"summarizer": "CONDENSATION_MODEL", "openai/gpt-4o-mini": "x"}, True
    )
    report = evaluate(make_settings(), RedisFacts(configured=False), facts)
    assert report.status is Status.DEGRADED
    assert report.checks["config"]["summarizers"] == {"summarizer": False, "openai/gpt-4o-mini": True}
    assert report.issues == ["summariser 'summarizer' (CONDENSATION_MODEL) is not a model_name in c.yaml"]


def test_config_without_the_plugin_degrades() -> None:
    report = evaluate(make_settings(), RedisFacts(configured=False), ConfigFacts("c.yaml", ("gpt-4o",), {}, False))
    assert report.status is Status.DEGRADED
    assert "does not register the plugin" in report.issues[0]


async def test_unreadable_config_is_unhealthy(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model_list: [unclosed")
    report = await check_health(make_settings(), bad)
    assert report.status is Status.UNHEALTHY
    assert "is not valid YAML" in report.issues[0]
    missing = await check_health(make_settings(), tmp_path / "absent.yaml")
    assert "cannot read" in missing.issues[0]


def test_cli_health_exit_code_and_single_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from litellm_ctx_hook.settings import default_settings

    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("REDIS_HOST", raising=False)
    monkeypatch.setenv("CONDENSATION_MODEL", "absent-alias")
    default_settings.cache_clear()
    try:
        path = write_config(tmp_path, CONFIG)
        result = CliRunner().invoke(app, ["health", "--json", "--config", str(path)])
        assert result.exit_code == 1, result.output
        report = json.loads(result.stdout)
        assert report["status"] == "degraded"
        assert result.stderr.strip().splitlines() == [f"degraded: {report['issues'][0]}"]
        ok = CliRunner().invoke(app, ["health"])
        assert ok.exit_code == 0 and "healthy" in ok.stdout and not ok.stderr
    finally:
        default_settings.cache_clear()
