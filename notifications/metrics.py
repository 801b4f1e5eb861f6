"""The notifications app's Prometheus metrics (plumbing in core/metrics.py)."""

from __future__ import annotations

from prometheus_client import Counter

from core.metrics import NAMESPACE
from notifications.attempts import Channel, Outcome

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


def delivery_count(channel: Channel, outcome: Outcome) -> None:
    """Count one attempt; called by the task once the attempt is recorded (committed)."""
    DELIVERIES.labels(channel.value, outcome.value).inc()
