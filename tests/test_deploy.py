"""deploy/: the Prometheus rules pass promtool (syntax and their own unit tests), and the metric
references of the rules and the Grafana dashboard can be read (the live check against a real proxy's
``/metrics`` is ``e2e/test_operations_e2e.py``)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
RULES = DEPLOY / "prometheus" / "litellm-ctx-hook.rules.yml"
RULES_TEST = DEPLOY / "prometheus" / "litellm-ctx-hook.rules.test.yml"
DASHBOARD = DEPLOY / "grafana" / "litellm-ctx-hook.json"
SCRAPE_LABELS = frozenset({"job", "instance"})  # added by Prometheus when it scrapes, not by the plugin

_METRIC = re.compile(r"\b(litellm_ctx_[a-z_]+)\b(\{[^}]*\})?")
_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"([^"]*)"')
_GROUPING = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")


@dataclass
class Expr:
    """The plugin metrics one PromQL expression uses: names, label matchers, grouping labels."""

    text: str
    metrics: dict[str, dict[str, tuple[str, str]]] = field(default_factory=dict)  # name -> label -> (op, value)
    grouping: set[str] = field(default_factory=set)


def parse_expr(text: str) -> Expr:
    out = Expr(text)
    for m in _METRIC.finditer(text):
        labels = out.metrics.setdefault(m.group(1), {})
        for label, op, value in _MATCHER.findall(m.group(2) or ""):
            labels[label] = (op, value)
    for m in _GROUPING.finditer(text):
        out.grouping.update(x.strip() for x in m.group(1).split(",") if x.strip())
    return out


def rule_exprs() -> list[Expr]:
    doc = yaml.safe_load(RULES.read_text())
    return [parse_expr(rule["expr"]) for group in doc["groups"] for rule in group["rules"]]


def dashboard_exprs() -> list[Expr]:
    doc = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in doc["templating"]["list"] if v.get("definition")]
    return [parse_expr(e) for e in exprs]


def test_parse_expr_reads_names_matchers_and_grouping() -> None:
    e = parse_expr(
        'sum by (job, le) (rate(litellm_ctx_processing_seconds_bucket{job=~"$job"}[5m])) / '
        'sum without (instance) (litellm_ctx_cache_total{result="hit"})'
    )
    assert e.metrics == {
        "litellm_ctx_processing_seconds_bucket": {"job": ("=~", "$job")},
        "litellm_ctx_cache_total": {"result": ("=", "hit")},
    }
    assert e.grouping == {"job", "le", "instance"}


def test_every_rule_and_panel_uses_plugin_metrics() -> None:
    rules, panels = rule_exprs(), dashboard_exprs()
    assert len(rules) == 6
    assert all(e.metrics for e in rules + panels), [e.text for e in rules + panels if not e.metrics]
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]}
    assert {
        "LiteLLMCtxHighRejectionRate",
        "LiteLLMCtxSummarizerFailures",
        "LiteLLMCtxRedisDown",
        "LiteLLMCtxProcessingTimeP99High",
        "LiteLLMCtxInvalidRequests",
    } <= alerts


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (Debian: apt install prometheus)")
def test_rules_pass_promtool_check_and_their_unit_tests() -> None:
    check = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "SUCCESS: 6 rules found" in check.stdout
    unit = subprocess.run(
        ["promtool", "test", "rules", RULES_TEST.name],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=RULES_TEST.parent,
    )
    assert unit.returncode == 0, unit.stdout + unit.stderr
