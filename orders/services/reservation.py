from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import prefetch_related_objects

from core.log_context import log_context_bind_order
from core.outbox import outbox_enqueue
from inventory.services import stock_reserve_many
from orders.lock_objects import order_lock, orders_lock_pending, reservation_turn_wait
from orders.metrics import reservation_count
from orders.models import Actor, Order, OrderStatus
from orders.selectors import order_status
from orders.services.transitions import order_transition, orders_transition

logger = logging.getLogger(__name__)

RESERVE_TASK = "orders.tasks.order_reserve_task"


# Pending orders reserved in one transaction. Each order still has its own task; a task whose
# order an earlier batch took finds it reserved and does nothing. 50 orders make one transaction
# of a few statements where they made 50 of about ten each, and hold their rows a few
# milliseconds; more would only hold the product rows (and so the placement of new orders for
# them) longer.
RESERVE_BATCH_SIZE = 50


def order_reserve(*, order_id: int) -> str:
    """Reserve all of the order's stock, or reject it, together with up to
    ``RESERVE_BATCH_SIZE - 1`` other pending orders nobody else holds (oldest first), each all
    or nothing. Returns this order's status afterwards.

    One batch runs at a time: the task waits its turn (``reservation_turn_wait``), and the
    orders placed meanwhile wait for the next batch, so under load the batches grow instead of
    several small ones running side by side, each paying a transaction's fixed cost and its
    follow-up tasks. The turn comes before any row lock, and nothing else takes it: no deadlock.

    Idempotent: the orders' rows are locked and only ``pending`` orders are worked on, so a
    redelivered or duplicated task changes nothing.
    """
    # Most tasks find their order taken by an earlier batch. No order returns to pending, so a
    # plain read tells them so without a transaction or a row lock.
    status = order_status(order_id=order_id)
    if status is not None and status != OrderStatus.PENDING:
        reservation_count("skipped")
        return str(status)
    with transaction.atomic(durable=True):
        reservation_turn_wait()
        try:
            order = order_lock(order_id=order_id)
        except Order.DoesNotExist:
            logger.warning("Reservation for unknown order %s ignored", order_id)
            return "missing"
        if order.status != OrderStatus.PENDING:
            reservation_count("skipped")
            return str(order.status)
        batch = [order, *orders_lock_pending(exclude=order.pk, limit=RESERVE_BATCH_SIZE - 1)]
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
                {"sku": skus[s.product_id], "quantity": s.requested, "reason": s.reason}
                for s in shortfalls[rejected.pk]
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
        log_context_bind_order(order.pk)
        return str(order.status)


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
