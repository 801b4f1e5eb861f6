"""The notifications app's Prometheus metrics (plumbing in core/metrics.py)."""

from __future__ import annotations

from collections.abc import Iterator

from django.db.models import Count
from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from core.metrics import NAMESPACE
from notifications.attempts import Channel, Outcome
from notifications.models import CircuitState, WebhookEndpoint

DELIVERIES = Counter(
    "notification_deliveries",
    "Attempts at sending a notification, by channel (webhook, email) and outcome: sent, retry (failed, "
    "another attempt is scheduled), gave_up (failed for good: dead-lettered), skipped (already sent, "
    "endpoint deactivated, or being sent by another worker), wait (not sent, no attempt spent: an "
    "earlier event of the order is still on its way to the endpoint).",
    ["channel", "outcome"],
    namespace=NAMESPACE,
)
for _channel in Channel:
    for _outcome in Outcome:
        DELIVERIES.labels(_channel.value, _outcome.value)


def delivery_count(channel: Channel, outcome: Outcome, amount: int = 1) -> None:
    """Count attempts; called by the task once they are recorded (committed)."""
    DELIVERIES.labels(channel.value, outcome.value).inc(amount)


class WebhookCircuitCollector(Collector):
    """Merchant endpoints by circuit state (active ones), and the deactivated ones, at scrape
    time. One grouped count over the endpoints (a table of merchants, not of traffic); no
    endpoint ids as labels."""

    def collect(self) -> Iterator[Metric]:
        by_state = GaugeMetricFamily(
            f"{NAMESPACE}_webhook_endpoints",
            "Merchant webhook endpoints by circuit state: closed, open (deliveries wait), half_open (a probe "
            "is out); inactive ones (deactivated by staff, or disabled after failing for days) as inactive.",
            labels=["state"],
        )
        counts = dict.fromkeys([*CircuitState.values, "inactive"], 0)
        rows = WebhookEndpoint.objects.values("active", "circuit_state").annotate(n=Count("id")).order_by()
        for row in rows:
            counts[row["circuit_state"] if row["active"] else "inactive"] += row["n"]
        for state, number in counts.items():
            by_state.add_metric([state], number)
        yield by_state
