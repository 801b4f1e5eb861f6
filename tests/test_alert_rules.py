"""The alert rules, without promtool: their shape, and that every metric they use exists.

promtool (scripts/test.sh) checks the PromQL and runs deploy/prometheus/alerts_test.yml; it
cannot know that a metric name in a rule is one the service really exports.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

import notifications.metrics  # noqa: F401  (worker-side metrics: imported by the tasks there)

RULES = Path(__file__).resolve().parent.parent / "deploy" / "prometheus" / "alerts.yml"
REQUIRED = {
    "OrderQueueGrowing", "DeadLetterQueueNotEmpty", "OutboxLagging", "OrdersStuckPending",
    "ApiServerErrors", "LatencyBudgetBurningFast", "ScrapeTargetDown", "BeatNotRunning", "StockLedgerDrift",
}  # fmt: skip


def rules() -> list[dict]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def exported_names(text: str) -> set[str]:
    names = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        if family.type == "counter":
            names.add(f"{family.name}_total")
        if family.type == "histogram":
            names.update(f"{family.name}_{suffix}" for suffix in ("bucket", "sum", "count"))
    return names


def test_every_rule_is_complete_and_named_once():
    alerts = rules()

    names = [rule["alert"] for rule in alerts]
    assert len(names) == len(set(names))
    assert set(names) >= REQUIRED
    assert any(name.startswith("Webhook") for name in names)
    for rule in alerts:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["expr"].strip(), rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        if "for" in rule:
            assert re.fullmatch(r"\d+[smh]", rule["for"]), rule["alert"]


# Identifiers in PromQL that are not metric names.
PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
    "inf", "nan",
}  # fmt: skip
# Made by Prometheus for every target it scrapes, not by the service.
PROMETHEUS_METRICS = {"up"}
SCRAPE_CONFIG = RULES.parent / "prometheus.yml"


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings (label values, arguments)
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)  # label lists
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr):
        following = expr[match.end() :].lstrip()
        if following.startswith("(") or match.group() in PROMQL_WORDS:
            continue  # a function or a keyword
        if match.start() > 0 and (expr[match.start() - 1].isdigit() or expr[match.start() - 1] == "."):
            continue  # a number's exponent or a duration's unit
        names.add(match.group())
    return names


def service_metric_names(client) -> set[str]:
    """Every name /metrics exports (counters and histograms by their sample names), and Prometheus's own."""
    return exported_names(client.get("/metrics").content.decode()) | PROMETHEUS_METRICS


def test_metric_names_are_found_in_expressions():
    expr = 'sum by (le) (rate(foo_bucket{le="0.25", view!~"a|b"}[5m])) / max(bar) > (14.4 * 0.01) and up{job="x"} == 0'

    assert metric_names(expr) == {"foo_bucket", "bar", "up"}


@pytest.mark.django_db
def test_every_metric_a_rule_uses_is_exported(client):
    exported = service_metric_names(client)

    used = {name for rule in rules() for name in metric_names(rule["expr"])}

    assert {name for name in used if name.startswith("orderservice_")}
    assert used <= exported, used - exported


def test_rules_name_the_scrape_jobs_of_the_scrape_config():
    jobs = {job["job_name"] for job in yaml.safe_load(SCRAPE_CONFIG.read_text())["scrape_configs"]}
    named = {job for rule in rules() for job in re.findall(r"orders-\w+", rule["expr"])}

    assert named and named <= jobs
