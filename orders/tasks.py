from __future__ import annotations

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

from core.log_context import log_context_bind_order
from orders.activity import activity_rollup
from orders.reservation_requests import reservation_requests_gather
from orders.services import order_expire_overdue, order_reservation_sweep, order_reserve
from orders.services.retention import payment_receipt_prune

logger = logging.getLogger(__name__)

# Only an unreachable or failing database is worth retrying; any other error is a bug or bad
# data that a retry would not fix, so the message goes to the dead-letter queue at once.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)


@shared_task(
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=1,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=8,
)
def order_reserve_task(order_id: int, gather: bool = True) -> str:
    log_context_bind_order(order_id)
    if gather:  # not for a full batch's follow-up: its orders wait already
        reservation_requests_gather()
    return order_reserve(order_id=order_id)


# Periodic: the safety net under the orders that send no reservation task of their own.
@shared_task(acks_on_failure_or_timeout=True)
def order_reservation_sweep_task() -> int | None:
    return order_reservation_sweep()


# A sweep stops after this long and leaves the rest to the next beat tick.
EXPIRY_SWEEP_TIME_BUDGET_SECONDS = 20.0


# Periodic: a failed sweep is acknowledged, not dead-lettered; the next tick sweeps again.
@shared_task(acks_on_failure_or_timeout=True)
def order_expire_overdue_task() -> int:
    return order_expire_overdue(time_budget_seconds=EXPIRY_SWEEP_TIME_BUDGET_SECONDS)


# Periodic, every minute: the per-minute counts the dashboard's charts draw (orders/activity.py).
@shared_task(acks_on_failure_or_timeout=True)
def activity_rollup_task() -> int:
    return activity_rollup()


# Periodic, like the sweep: the next tick prunes what a failed run left.
@shared_task(acks_on_failure_or_timeout=True)
def payment_receipt_prune_task() -> int:
    deleted = payment_receipt_prune()
    logger.info("Deleted %d payment callback receipt(s) past their retention", deleted)
    return deleted
