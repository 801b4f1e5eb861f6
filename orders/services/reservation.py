from __future__ import annotations

import logging

from django.db import transaction
from django.db.models import prefetch_related_objects

from core.outbox import outbox_enqueue
from inventory.services import StockUnavailable, stock_reserve
from orders.lock_objects import order_lock
from orders.metrics import reservation_count
from orders.models import Actor, Order, OrderStatus
from orders.services.transitions import order_transition

logger = logging.getLogger(__name__)

RESERVE_TASK = "orders.tasks.order_reserve_task"


def order_reserve(*, order_id: int) -> str:
    """Reserve all of the order's stock, or reject it. Returns the order's status afterwards.

    Idempotent: the order row is locked and only a ``pending`` order is worked on, so a
    redelivered or duplicated task changes nothing.
    """
    with transaction.atomic(durable=True):
        try:
            order = order_lock(order_id=order_id)
        except Order.DoesNotExist:
            logger.warning("Reservation for unknown order %s ignored", order_id)
            return "missing"
        if order.status != OrderStatus.PENDING:
            reservation_count("skipped")
            return str(order.status)
        # Read once: the transition gives back the lines' claims and sends them in the payload.
        prefetch_related_objects([order], "lines")
        lines = order.lines.all()
        try:
            with transaction.atomic():  # a savepoint: a shortfall undoes the partial decrements
                stock_reserve(order_id=order.pk, lines=[(line.product_id, line.quantity) for line in lines])
        except StockUnavailable as exc:
            skus = {line.product_id: line.sku for line in lines}
            shortfalls = [
                {"sku": skus[s.product_id], "quantity": s.requested, "reason": s.reason} for s in exc.shortfalls
            ]
            order_transition(
                order=order,
                name="reject",
                actor=Actor.SYSTEM,
                reason="; ".join(f"{line['sku']}: {line['reason']}" for line in shortfalls),
                data={"lines": shortfalls},
            )
        else:
            order_transition(order=order, name="reserve", actor=Actor.SYSTEM, reason="stock reserved")
        reservation_count(str(order.status))
        logger.info("Order %s %s", order.pk, order.status)
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
