"""Core's scrape-time gauges: the queues and the outbox, from cached readings (core/readings.py).

Listed in the ``METRICS_COLLECTORS`` setting and read only by the web's ``/metrics``
(core/metrics.py), so a worker's scrape never touches the database or the broker.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from core.metrics import NAMESPACE
from core.readings import outbox_backlog, queue_depths


class QueueDepthCollector(Collector):
    """Ready messages and consumers of every work and dead-letter queue, read (cached) from
    RabbitMQ when Prometheus scrapes. RabbitMQ unreachable: no depth samples, and
    ``orderservice_broker_reachable`` 0."""

    def collect(self) -> Iterator[Metric]:
        depths = queue_depths()
        reachable = GaugeMetricFamily(
            f"{NAMESPACE}_broker_reachable", "1 if RabbitMQ answered the queue-depth reading, else 0."
        )
        messages = GaugeMetricFamily(f"{NAMESPACE}_queue_messages", "Messages ready in a work queue.", labels=["queue"])
        consumers = GaugeMetricFamily(
            f"{NAMESPACE}_queue_consumers", "Consumers (worker processes) of a work queue.", labels=["queue"]
        )
        dead = GaugeMetricFamily(
            f"{NAMESPACE}_dead_letter_queue_messages", "Messages in a dead-letter queue.", labels=["queue"]
        )
        for depth in depths:
            if depth.messages is None:
                continue  # no sample rather than a made-up zero
            if depth.dead_letter:
                dead.add_metric([depth.name], depth.messages)
            else:
                messages.add_metric([depth.name], depth.messages)
                consumers.add_metric([depth.name], depth.consumers or 0)
        reachable.add_metric([], 0 if any(depth.messages is None for depth in depths) else 1)
        yield from (reachable, messages, consumers, dead)


class OutboxCollector(Collector):
    """The outbox backlog, read (cached) from PostgreSQL when Prometheus scrapes."""

    def collect(self) -> Iterator[Metric]:
        backlog = outbox_backlog()
        unpublished = GaugeMetricFamily(
            f"{NAMESPACE}_outbox_unpublished_messages", "Outbox rows not yet published to RabbitMQ."
        )
        unpublished.add_metric([], backlog.unpublished)
        oldest = GaugeMetricFamily(
            f"{NAMESPACE}_outbox_oldest_unpublished_age_seconds",
            "Age of the oldest outbox row not yet published; 0 when there is none.",
        )
        oldest.add_metric([], backlog.oldest_age_seconds)
        yield from (unpublished, oldest)
