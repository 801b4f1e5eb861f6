from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import prefetch_related_objects
from django.utils import timezone

from core.log_context import log_context_bind_order
from core.outbox import outbox_enqueue
from inventory.services import stock_reserve_many
from orders.lock_objects import order_lock, orders_lock_pending, reservation_turn_wait
from orders.metrics import reservation_count
from orders.models import Actor, Order, OrderStatus
from orders.reservation_requests import reservation_requests_taken
from orders.services.transitions import order_transition, orders_transition

logger = logging.getLogger(__name__)

RESERVE_TASK = "orders.tasks.order_reserve_task"


# Pending orders reserved in one transaction. 50 orders make one transaction of a few statements
# where they made 50 of about ten each, and hold their rows a few milliseconds; more would only
# hold the product rows (and so the placement of new orders for them) longer.
RESERVE_BATCH_SIZE = 50
# An order pending this long has no reservation task on its way, or one that failed: the
# reservation sweep queues one (``order_reservation_sweep``). Batches under load take well under
# a second; a backlog that takes longer only gets one task more per sweep.
RESERVATION_SWEEP_AFTER = timedelta(seconds=30)


def order_reserve(*, order_id: int) -> str:
    """Reserve all of the order's stock, or reject it, together with the other pending orders
    nobody else holds (oldest first, ``RESERVE_BATCH_SIZE`` in all), each all or nothing.
    Returns this order's status afterwards.

    A task serves every order placed before its batch starts: most orders send no task of their
    own (orders/reservation_requests.py). So the batch runs even when this task's order was taken
    by an earlier one, and a full batch that leaves pending orders behind queues the task of the
    oldest of them, committed with the batch (a task that starts at once: its orders wait already).

    One batch runs at a time: the task waits its turn (``reservation_turn_wait``), and the
    orders placed meanwhile wait for the next batch, so under load the batches grow instead of
    several small ones running side by side, each paying a transaction's fixed cost and its
    follow-up tasks. The turn comes before any row lock, and nothing else takes it: no deadlock.

    Idempotent: the orders' rows are locked and only ``pending`` orders are worked on, so a
    redelivered or duplicated task changes nothing.
    """
    with transaction.atomic(durable=True):
        reservation_turn_wait()
        # Before the pending orders are read: every order placed without a task is seen. (Redis,
        # inside the transaction: should the batch roll back, the mark's absence only makes the
        # next order send its task, and the orders stay pending for this task's retry or the sweep.)
        reservation_requests_taken()
        order: Order | None
        try:
            order = order_lock(order_id=order_id)
        except Order.DoesNotExist:
            logger.warning("Reservation for unknown order %s; reserving the other pending orders", order_id)
            order = None
        own = [order] if order is not None and order.status == OrderStatus.PENDING else []
        if not own:
            reservation_count("skipped")
        room = RESERVE_BATCH_SIZE - len(own)
        # One more than there is room for: whether pending orders are left behind.
        others = orders_lock_pending(exclude=order_id, limit=room + 1)
        if len(others) > room:
            outbox_enqueue(task_name=RESERVE_TASK, args=[others[room].pk], kwargs={"gather": False})
        batch = own + others[:room]
        if batch:
            _orders_reserve(batch)
        log_context_bind_order(order_id)
        return "missing" if order is None else str(order.status)


def _orders_reserve(batch: list[Order]) -> None:
    """Reserve each order's stock or reject it, each all or nothing. Call holding their row locks."""
    # Read once: the transitions give back the lines' claims and send them in the payloads.
    prefetch_related_objects(batch, "lines")
    shortfalls = stock_reserve_many(
        orders=[(o.pk, [(line.product_id, line.quantity) for line in o.lines.all()]) for o in batch]
    )
    reserved = [o for o in batch if o.pk not in shortfalls]
    orders_transition(orders=reserved, name="reserve", actor=Actor.SYSTEM, reason="stock reserved")
    for rejected in (o for o in batch if o.pk in shortfalls):
        skus = {line.product_id: line.sku for line in rejected.lines.all()}
        lines = [
            {"sku": skus[s.product_id], "quantity": s.requested, "reason": s.reason} for s in shortfalls[rejected.pk]
        ]
        order_transition(
            order=rejected,
            name="reject",
            actor=Actor.SYSTEM,
            reason="; ".join(f"{line['sku']}: {line['reason']}" for line in lines),
            data={"lines": lines},
        )
    for worked in batch:
        reservation_count(str(worked.status))
        # One line per order, naming it, under the request and task that decided it.
        log_context_bind_order(worked.pk)
        logger.info("Order %s %s", worked.pk, worked.status, extra={"batch": len(batch)})


def order_reservation_retry(*, order_id: int) -> bool:
    """Queue the reservation of a ``pending`` order again (for orders stuck by an outage).

    Returns False, changing nothing, if the order is no longer pending. Harmless if the
    first reservation task is still on its way: the reservation itself is idempotent.
    """
    with transaction.atomic():
        order = order_lock(order_id=order_id)
        if order.status != OrderStatus.PENDING:
            return False
        outbox_enqueue(task_name=RESERVE_TASK, args=[order.pk])
    return True


def order_reservation_sweep(*, now: datetime | None = None) -> int | None:
    """Queue the reservation of the oldest order pending longer than ``RESERVATION_SWEEP_AFTER``;
    its batch takes the others. Returns its id, or None when no order waits that long.

    The safety net under the orders that send no task of their own (orders/reservation_requests.py):
    whatever left them waiting (a mark that outlived its task, a batch in the dead-letter queue),
    they are reserved without an operator. Served by the (status, created_at, id) index.
    """
    cutoff = (now or timezone.now()) - RESERVATION_SWEEP_AFTER
    oldest = (
        Order.objects.filter(status=OrderStatus.PENDING, created_at__lte=cutoff)
        .order_by("created_at", "pk")
        .values_list("pk", flat=True)
        .first()
    )
    if oldest is None or not order_reservation_retry(order_id=oldest):
        return None
    logger.info("Order %s pending since before %s: reservation queued", oldest, cutoff.isoformat())
    return oldest
