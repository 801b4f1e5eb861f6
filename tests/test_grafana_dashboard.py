"""The Grafana dashboard (deploy/grafana/) is built only from metrics the service exports, and
covers what operators watch."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.test_alert_rules import metric_names, service_metric_names

DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "order-service.json"

# What the dashboard must show, each by a metric that measures it.
COVERED = {
    "intake": "orderservice_orders_created_total",
    "API answers": "django_http_responses_total_by_status_total",
    "reservation latency": "orderservice_task_run_duration_seconds_bucket",
    "queue depths": "orderservice_queue_messages",
    "dead letters": "orderservice_dead_letter_queue_messages",
    "outbox lag": "orderservice_outbox_oldest_unpublished_age_seconds",
    "webhook health": "orderservice_notification_deliveries_total",
    "expiry": "orderservice_order_transitions_total",
    "beat": "orderservice_most_overdue_reserved_order_seconds",
    "stock ledger": "orderservice_stock_ledger_drift_products",
}


def panels() -> list[dict]:
    found = []
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        found += [panel, *panel.get("panels", [])]
    return [panel for panel in found if panel["type"] != "row"]


def expressions() -> list[str]:
    return [target["expr"] for panel in panels() for target in panel["targets"]]


def test_every_panel_has_a_title_a_description_and_a_query_on_the_datasource_variable():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["templating"]["list"][0] == {
        **dashboard["templating"]["list"][0],
        "name": "datasource",
        "type": "datasource",
        "query": "prometheus",
    }
    ids = [panel["id"] for panel in panels()]
    assert len(ids) == len(set(ids))
    for panel in panels():
        assert panel["title"] and panel["description"], panel["id"]
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"], panel["title"]


@pytest.mark.django_db
def test_every_expression_reads_only_metrics_the_service_exports(client):
    exported = service_metric_names(client)

    used = {name for expr in expressions() for name in metric_names(expr)}

    assert used <= exported, used - exported


def test_the_dashboard_covers_what_operators_watch():
    used = {name for expr in expressions() for name in metric_names(expr)}

    assert {topic: metric for topic, metric in COVERED.items() if metric not in used} == {}
