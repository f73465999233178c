"""The alert rules and the dashboard watch metrics that exist, and the rules pass their own tests."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from django.utils import timezone

from fraud.models import BatchJob, BatchStatus, DriftReport
from tests.conftest import required_binary
from tests.factories import TransactionFactory
from tests.fraud.scoring.test_scoring_api import body
from tests.ops.test_metrics import scrape

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
RULES = sorted((MONITORING / "rules").glob("*.yml"))
DASHBOARDS = sorted((MONITORING / "grafana" / "dashboards").glob("*.json"))

# Series that come from elsewhere: Prometheus itself and cAdvisor (container CPU and memory).
EXTERNAL = {
    "up",
    "container_cpu_usage_seconds_total",
    "container_spec_cpu_quota",
    "container_spec_cpu_period",
    "container_memory_working_set_bytes",
    "container_spec_memory_limit_bytes",
}
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "topk", "bottomk", "rate", "increase", "irate", "histogram_quantile",
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool", "offset",
    "humanizeDuration", "humanizePercentage", "printf", "value", "labels",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges
    expr = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)  # grouping labels
    expr = re.sub(r'"[^"]*"', "", expr)
    expr = re.sub(r"\$\w+", "", expr)  # Grafana variables
    names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    return {n for n in names if n not in PROMQL_WORDS and not re.fullmatch(r"\d.*|e\d+", n)}


def rule_docs() -> list[dict]:
    return [yaml.safe_load(path.read_text()) for path in RULES]


def recorded() -> set[str]:
    return {
        rule["record"] for doc in rule_docs() for group in doc["groups"] for rule in group["rules"] if "record" in rule
    }


def exported(alice_api) -> set[str]:
    """Every series name our /metrics serves once something was scored (histograms as their
    _bucket/_count/_sum series)."""
    alice_api.post("/api/v1/transactions/", body(transaction_id="mon-1"), format="json")
    from cipherguard import metrics

    # Series that appear only once events happen elsewhere (a worker, a task, a pool): touch them.
    metrics.CELERY_TASKS.labels("probe", "SUCCESS")
    metrics.CELERY_TASK_SECONDS.labels("probe")
    metrics.BATCH_ROWS.labels("scored")
    metrics.DB_POOL.labels("default", "open")
    return {name for name, _ in scrape()}


def test_every_metric_in_rules_and_dashboards_exists(alice_api, alice, active_model, monkeypatch):
    from fraud import metrics

    # The state gauges that need data to appear (queue length needs a broker, drift a report).
    monkeypatch.setattr(metrics, "_queue_length", lambda queue: 0)
    DriftReport.objects.create(day="2026-11-01", model_version=active_model, n=1, score_psi=0.1, feature_psi={"x": 0.1})
    TransactionFactory(model_version=active_model, label="fraud", label_time="2026-11-01T00:00:00Z",
                        label_source="client", decision="review", fraud_score=0.9, scored_at=timezone.now())  # fmt: skip

    BatchJob.objects.create(owner=alice, source="csv", status=BatchStatus.RUNNING, total=10)

    known = exported(alice_api) | recorded() | EXTERNAL
    used: dict[str, set[str]] = {}
    for doc in rule_docs():
        for group in doc["groups"]:
            for rule in group["rules"]:
                used[rule.get("alert") or rule["record"]] = metric_names(rule["expr"])
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                used[f"{path.name}: {panel['title']}"] = metric_names(target["expr"])

    unknown = {where: sorted(names - known) for where, names in used.items() if names - known}
    assert unknown == {}
    assert len(used) > 40


def test_every_alert_has_a_runbook_section_and_a_unit_test():
    runbook = (ROOT / "docs" / "runbooks" / "alerts.md").read_text().lower()
    tests = "\n".join(path.read_text() for path in (MONITORING / "tests").glob("*.yml"))
    alerts = [rule for doc in rule_docs() for group in doc["groups"] for rule in group["rules"] if "alert" in rule]
    assert len(alerts) >= 10
    for rule in alerts:
        anchor = rule["annotations"]["runbook_url"].split("#")[1]
        assert f"## {anchor}" in runbook.replace("## `", "## ").replace("`", ""), anchor
        assert f"alertname: {rule['alert']}" in tests, rule["alert"]


def test_promtool_accepts_the_rules_and_their_unit_tests_pass():
    binary = required_binary("promtool", "apt-get install prometheus")
    check = subprocess.run([binary, "check", "rules", *map(str, RULES)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    tests = sorted((MONITORING / "tests").glob("*.yml"))
    result = subprocess.run([binary, "test", "rules", *map(str, tests)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_is_provisionable(path):
    dashboard = json.loads(path.read_text())
    assert dashboard["uid"] and dashboard["title"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    titles = {panel["title"] for panel in dashboard["panels"] if panel["type"] == "row"}
    assert {"API", "Model", "Analysts' queue", "Webhooks"} <= titles
