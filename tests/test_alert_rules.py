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
REQUIRED = {"OrderQueueGrowing", "DeadLetterQueueNotEmpty", "OutboxLagging", "OrdersStuckPending"}


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


@pytest.mark.django_db
def test_every_metric_a_rule_uses_is_exported(client):
    exported = exported_names(client.get("/metrics").content.decode())

    used = {name for rule in rules() for name in re.findall(r"\borderservice_\w+", rule["expr"])}

    assert used
    assert used <= exported, used - exported
