"""The orders app's Prometheus metrics (plumbing in core/metrics.py)."""

from __future__ import annotations

import functools
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from typing import ParamSpec

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from core.counting import COUNT_LIMIT
from core.errors import DomainError
from core.metrics import NAMESPACE, count_after_commit
from orders.models import OrderStatus, PaymentWebhookReceipt
from orders.selectors import order_desk_stats

P = ParamSpec("P")

ORDERS_CREATED = Counter("orders_created", "Orders accepted by the API.", namespace=NAMESPACE)
TRANSITIONS = Counter(
    "order_transitions",
    "Order status transitions, by the status left and the status entered.",
    ["from_status", "to_status"],
    namespace=NAMESPACE,
)
RESERVATIONS = Counter(
    "order_reservations",
    "Stock reservation attempts by outcome: reserved, rejected (stock short or product inactive), "
    "skipped (the task's order was no longer pending: an earlier batch took it).",
    ["outcome"],
    namespace=NAMESPACE,
)
PAYMENT_CALLBACKS = Counter(
    "payment_callbacks",
    "Payment provider callbacks by outcome: applied, not_applied, failed_payment, unknown_order, "
    "duplicate, invalid_signature, invalid_payload.",
    ["outcome"],
    namespace=NAMESPACE,
)

# Every label value known up front is exported from the start, at 0, so that rate() and
# increase() see the first event.
for _outcome in ("reserved", "rejected", "skipped"):
    RESERVATIONS.labels(_outcome)
for _outcome in [*PaymentWebhookReceipt.Outcome.values, "duplicate", "invalid_signature", "invalid_payload"]:
    PAYMENT_CALLBACKS.labels(_outcome)


def order_created_count() -> None:
    """Count an accepted order when the transaction that writes it commits."""
    count_after_commit(ORDERS_CREATED)


def transitions_count(from_statuses: list[str], to_status: str) -> None:
    """Count transitions (one per source status given) when their transaction commits."""
    for from_status, n in Tally(from_statuses).items():
        count_after_commit(TRANSITIONS.labels(from_status, to_status), n)


def reservation_count(outcome: str) -> None:
    count_after_commit(RESERVATIONS.labels(outcome))


def payment_callbacks_counted(process: Callable[P, str]) -> Callable[P, str]:
    """Count each callback by the outcome ``process`` returns (after its transaction), or by the
    code of the domain error it raises (bad signature, bad payload)."""

    @functools.wraps(process)
    def counted(*args: P.args, **kwargs: P.kwargs) -> str:
        try:
            outcome = process(*args, **kwargs)
        except DomainError as exc:
            PAYMENT_CALLBACKS.labels(str(exc.code)).inc()
            raise
        PAYMENT_CALLBACKS.labels(outcome).inc()
        return outcome

    return counted


class OrderDeskCollector(Collector):
    """Orders per status and the age of the oldest pending order, read (cached) at scrape time."""

    def collect(self) -> Iterator[Metric]:
        stats = order_desk_stats()
        per_status = GaugeMetricFamily(
            f"{NAMESPACE}_orders",
            f"Orders in each status: exact up to {COUNT_LIMIT}, PostgreSQL's estimate above.",
            labels=["status"],
        )
        for status in OrderStatus:
            per_status.add_metric([status.value], stats.per_status[status.value].value)
        oldest = GaugeMetricFamily(
            f"{NAMESPACE}_oldest_pending_order_age_seconds",
            "Age of the oldest order still pending (waiting for its stock reservation); 0 when none.",
        )
        oldest.add_metric([], stats.oldest_pending_age_seconds)
        overdue = GaugeMetricFamily(
            f"{NAMESPACE}_most_overdue_reserved_order_seconds",
            "How long the reserved order most past its payment deadline has been overdue; 0 when none. "
            "The expiry sweep on beat closes overdue orders within seconds.",
        )
        overdue.add_metric([], stats.most_overdue_seconds)
        yield per_status
        yield oldest
        yield overdue
