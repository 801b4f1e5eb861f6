"""Placing an order: the business rules a new order must pass, and what placing it writes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import NoReturn

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction

from core.errors import Conflict, FieldError, InvalidFields
from core.outbox import outbox_enqueue
from inventory.models import Product
from inventory.selectors import products_by_sku
from inventory.services import stock_claim
from inventory.stock_marks import StockMark, stock_marks_read, stock_marks_write_on_commit
from orders.activity import activity_sold_out_count
from orders.error_codes import OrderErrorCode
from orders.metrics import order_created_count
from orders.models import Actor, Order, OrderEvent, OrderLine, OrderStatus, order_lines_cache
from orders.services.reservation import RESERVE_TASK


class SoldOut(Conflict):
    code = OrderErrorCode.SOLD_OUT


# The largest total Order.total holds: 14 digits, 2 of them decimals.
MAX_TOTAL = Decimal("999999999999.99")


class TooManyOpenOrders(Conflict):
    code = OrderErrorCode.TOO_MANY_OPEN_ORDERS


def _open_orders_at_cap(*, customer: User) -> int | None:
    """The cap (``ORDER_MAX_OPEN_PER_CUSTOMER``) if ``customer`` already has that many pending or
    reserved orders, else None.

    Call inside the placing transaction: the customer's row lock makes concurrent orders of one
    customer count one after the other, so the cap holds under any concurrency. Reads at most the
    cap's number of index entries (the customer's orders of one status, orders/models.py).
    """
    cap = settings.ORDER_MAX_OPEN_PER_CUSTOMER
    if cap is None:
        return None
    User.objects.select_for_update().filter(pk=customer.pk).values_list("pk", flat=True).get()
    open_orders = Order.objects.filter(
        customer=customer, status__in=[OrderStatus.PENDING, OrderStatus.RESERVED]
    ).values_list("pk", flat=True)[:cap]
    return cap if len(open_orders) >= cap else None


@dataclass(frozen=True)
class OrderItem:
    sku: str
    quantity: int


def _products_checked(items: Sequence[OrderItem]) -> list[Product]:
    """The product of each item; raises :class:`InvalidFields` naming every line that cannot be sold."""
    products = products_by_sku(skus=[item.sku for item in items])
    errors: list[FieldError] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        attr, product = f"items.{index}.sku", products.get(item.sku)
        if item.sku in seen:
            message = f"SKU {item.sku!r} appears more than once; combine the lines."
            errors.append(FieldError(attr, OrderErrorCode.DUPLICATE_SKU, message))
        elif product is None:
            errors.append(FieldError(attr, OrderErrorCode.UNKNOWN_SKU, f"Unknown SKU {item.sku!r}."))
        elif not product.active:
            errors.append(FieldError(attr, OrderErrorCode.PRODUCT_INACTIVE, f"SKU {item.sku!r} is not for sale."))
        seen.add(item.sku)
    if errors:
        raise InvalidFields(errors)
    if len({products[item.sku].currency for item in items}) > 1:
        message = "All items of an order must be priced in one currency."
        raise InvalidFields([FieldError("items", OrderErrorCode.MIXED_CURRENCIES, message)])
    return [products[item.sku] for item in items]


def _sold_out_by_marks(items: Sequence[OrderItem]) -> list[str]:
    """The SKUs the stock marks in Redis show short, when the marks alone decide the answer.

    Only when every line has a mark, no SKU repeats, every product is for sale and all are in one
    currency: the database would then answer the same refusal (the marks are its committed state,
    see inventory/stock_marks.py). Otherwise, or with Redis unavailable, nothing: the caller asks
    PostgreSQL.
    """
    skus = [item.sku for item in items]
    if len(set(skus)) != len(skus):
        return []
    marks = stock_marks_read(skus=skus)
    if len(marks) != len(skus) or not all(mark.active for mark in marks.values()):
        return []
    if len({mark.currency for mark in marks.values()}) > 1:
        return []
    return [item.sku for item in items if marks[item.sku].free < item.quantity]


def _email_for(*, customer: User, email: str | None) -> str:
    email = email or customer.email
    if not email:
        message = "Required: your account has no e-mail address."
        raise InvalidFields([FieldError("email", OrderErrorCode.EMAIL_REQUIRED, message)])
    return email


def _refuse_sold_out(short: Sequence[str]) -> NoReturn:
    activity_sold_out_count()  # in memory: a refusal writes nothing (orders/activity.py)
    raise SoldOut(f"Not enough stock for: {', '.join(short)}.")


def order_place(*, customer: User, email: str | None, items: Sequence[OrderItem]) -> Order:
    """Accept an order: the order, its lines, its first event, its claims on the stock and its
    reservation task commit together. A worker reserves the stock later (``order_reserve``).

    Refused, with nothing written: a line whose SKU is unknown, inactive or repeated, or items
    in several currencies (:class:`InvalidFields`, per line); no ``email`` and none on the
    account; an order the stock less the claims of pending orders cannot serve in full
    (:class:`SoldOut`: a snapshot, the reservation alone decides); a customer who already has
    ``ORDER_MAX_OPEN_PER_CUSTOMER`` pending or reserved orders (:class:`TooManyOpenOrders`). Quantities (1 to 1000) and
    the number of lines (1 to 100) are the caller's to check: they are the input's shape.

    A refusal is answered from the stock marks in Redis when they decide it, without a database
    query; the database decides everything else, and refreshes the marks it refuses on.
    """
    short = _sold_out_by_marks(items)
    if short:  # the products passed their checks when the marks were written
        _email_for(customer=customer, email=email)
        _refuse_sold_out(short)
    products = _products_checked(items)
    email = _email_for(customer=customer, email=email)
    short_products = [p for p, item in zip(products, items, strict=True) if p.available - p.claimed < item.quantity]
    if short_products:
        # Read from committed rows with their versions: a later commit's mark wins over these.
        # (At once outside a transaction; under an Idempotency-Key the refusal rolls back, and
        # with it the hook.)
        stock_marks_write_on_commit(
            StockMark(p.pk, p.stock_version, p.sku, p.currency, p.active, p.available - p.claimed)
            for p in short_products
        )
        _refuse_sold_out([p.sku for p in short_products])
    total = sum((p.price * item.quantity for p, item in zip(products, items, strict=True)), Decimal("0"))
    if total > MAX_TOTAL:
        message = "The order's total is too large; split it into several orders."
        raise InvalidFields([FieldError("items", OrderErrorCode.TOTAL_TOO_LARGE, message)])
    # No savepoint when nested (an Idempotency-Key request runs inside the key's transaction):
    # nothing catches a failure here to carry on, so the savepoint would cost two statements.
    with transaction.atomic(savepoint=False):
        cap = _open_orders_at_cap(customer=customer)
        order = (
            None
            if cap is not None
            else _order_write(customer=customer, email=email, items=items, products=products, total=total)
        )
    # Raised once the transaction is over (it wrote nothing): raised inside it, with no savepoint,
    # it would break a caller's enclosing transaction.
    if order is None:
        raise TooManyOpenOrders(
            f"You already have {cap} orders waiting for reservation or payment; pay or cancel one first."
        )
    return order


def _order_write(
    *, customer: User, email: str, items: Sequence[OrderItem], products: list[Product], total: Decimal
) -> Order:
    """The order, its lines, first event, reservation task and stock claims; call in the placing transaction."""
    order = Order.objects.create(customer=customer, email=email, currency=products[0].currency, total=total)
    lines = OrderLine.objects.bulk_create(
        OrderLine(order=order, product=p, sku=p.sku, name=p.name, unit_price=p.price, quantity=item.quantity)
        for p, item in zip(products, items, strict=True)
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
    # The reservation task only: the order is announced (``order.pending``) by the
    # transaction that takes it out of pending (``orders_transition``).
    outbox_enqueue(task_name=RESERVE_TASK, args=[order.pk])
    # Last, so the product rows stay locked only for the commit.
    stock_claim(lines=[(p.pk, item.quantity) for p, item in zip(products, items, strict=True)])
    order_created_count()
    return order
