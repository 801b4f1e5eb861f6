from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth.models import User
from django.db import transaction

from core.errors import Conflict
from core.outbox import outbox_enqueue
from inventory.models import Product
from inventory.services import stock_claim
from orders.error_codes import OrderErrorCode
from orders.metrics import order_created_count
from orders.models import Actor, Order, OrderEvent, OrderLine, OrderStatus, order_lines_cache
from orders.services.reservation import RESERVE_TASK


class SoldOut(Conflict):
    code = OrderErrorCode.SOLD_OUT


@dataclass(frozen=True)
class OrderItem:
    product: Product
    quantity: int


def order_place(*, customer: User, email: str, items: list[OrderItem]) -> Order:
    """Accept an order: the order, its lines, its first event and the reservation task commit
    together (or not at all). Stock is reserved later by a worker (``order_reserve``), which
    also announces the order to e-mail and webhooks.

    Items must already be validated (known, active, distinct products in one currency), with
    the products as just read from the database.

    An order that its products' stock, less what accepted orders not yet reserved have asked
    for (``claimed``), cannot serve in full is refused (:class:`SoldOut`) and nothing is written:
    the worker would only reject it. This is what keeps a flash sale cheap once the stock is
    spoken for. The figures are a snapshot: an order they let through may still be rejected by
    the reservation, which alone decides; one they refuse was short at that moment, and the same
    order placed after a restock (or once a pending order is rejected or cancelled) is accepted.
    The claims are taken last, so the product rows stay locked only for the commit.
    """
    short = [item.product.sku for item in items if item.product.available - item.product.claimed < item.quantity]
    if short:
        raise SoldOut(f"Not enough stock for: {', '.join(short)}.")
    total = sum((item.product.price * item.quantity for item in items), Decimal("0"))
    # No savepoint when nested (an Idempotency-Key request runs inside the key's transaction):
    # nothing catches a failure here to carry on, so it aborts the whole transaction anyway,
    # and the savepoint would cost two statements per order.
    with transaction.atomic(savepoint=False):
        order = Order.objects.create(customer=customer, email=email, currency=items[0].product.currency, total=total)
        lines = OrderLine.objects.bulk_create(
            OrderLine(
                order=order,
                product=item.product,
                sku=item.product.sku,
                name=item.product.name,
                unit_price=item.product.price,
                quantity=item.quantity,
            )
            for item in items
        )
        order_lines_cache(order, lines)
        OrderEvent.objects.create(
            order=order,
            from_status="",
            to_status=OrderStatus.PENDING,
            actor=Actor.CUSTOMER,
            actor_user=customer,
            reason="order placed",
            created_at=order.created_at,
        )
        # The reservation task only: the order is announced (``order.pending``) when it leaves
        # pending, by the transaction that moves it on (orders_transition).
        outbox_enqueue(task_name=RESERVE_TASK, args=[order.pk])
        stock_claim(lines=[(item.product.pk, item.quantity) for item in items])
        order_created_count()
    return order
