"""Reads. Every queryset is filtered by the requesting user here, not by permissions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet, Sum
from django.utils import timezone

from core.counting import RowCount, count_bounded
from core.errors import NotFound
from core.readings import cached_reading, datetime_from_json, datetime_to_json
from inventory.models import Product
from orders.cache import order_cache_read, order_cache_store
from orders.error_codes import OrderErrorCode
from orders.models import Order, OrderEvent, OrderLine, OrderStatus, order_lines_cache
from orders.payloads import order_payload


class OrderNotFound(NotFound):
    code = OrderErrorCode.ORDER_NOT_FOUND


def _visible_orders(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Order]:
    orders = Order.objects.all()
    if getattr(user, "is_staff", False):
        return orders
    return orders.filter(customer_id=user.pk)


def order_list(
    *,
    user: AbstractBaseUser | AnonymousUser,
    status: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    email: str | None = None,
) -> QuerySet[Order]:
    """The orders ``user`` may see, newest first, with their lines; each filter optional.

    ``created_after`` is inclusive and ``created_before`` exclusive, so consecutive windows
    neither overlap nor leave a gap; ``email`` matches in any case. Read a page at a time (with
    core.pagination.CursorPage): every combination of these filters, for a customer and for
    staff, has an index that serves the page in this order (orders/models.py).
    """
    orders = _visible_orders(user).prefetch_related("lines").order_by("-created_at", "-pk")
    if status:
        orders = orders.filter(status=status)
    if created_after is not None:
        orders = orders.filter(created_at__gte=created_after)
    if created_before is not None:
        orders = orders.filter(created_at__lt=created_before)
    if email:
        orders = orders.filter(email__iexact=email)
    return orders


def order_get(*, user: AbstractBaseUser | AnonymousUser, order_id: int) -> Order:
    """The order if ``user`` may see it; another customer's order is simply not found (404).

    One query: the order's lines with the order joined (every placed order has lines), where
    ``prefetch_related`` would take two; a read answers in two round trips with authentication.
    """
    lines = OrderLine.objects.select_related("order").filter(order_id=order_id).order_by("pk")
    if not getattr(user, "is_staff", False):
        lines = lines.filter(order__customer_id=user.pk)
    found = list(lines)
    if found:
        order = found[0].order
        for line in found:
            line.order = order  # one Order instance, as a prefetch would give
    else:
        try:
            order = _visible_orders(user).get(pk=order_id)
        except Order.DoesNotExist as exc:
            raise OrderNotFound("Order not found.") from exc
    order_lines_cache(order, found)
    return order


def order_representation_get(*, user: AbstractBaseUser | AnonymousUser, order_id: int) -> dict[str, Any]:
    """The order as the API shows it, if ``user`` may see it: from its cached copy when Redis has
    one (no database query), else read with :func:`order_get`, leaving a copy."""
    cached = order_cache_read(order_id=order_id)
    if cached is not None:
        if not getattr(user, "is_staff", False) and cached.customer_id != user.pk:
            raise OrderNotFound("Order not found.")
        return cached.payload
    order = order_get(user=user, order_id=order_id)
    payload = order_payload(order)
    order_cache_store(order=order, payload=payload)
    return payload


def order_check_visible(*, user: AbstractBaseUser | AnonymousUser, order_id: int) -> None:
    """Raise :class:`OrderNotFound` unless ``user`` may see the order; reads neither it nor its lines."""
    if not _visible_orders(user).filter(pk=order_id).exists():
        raise OrderNotFound("Order not found.")


def order_is_customers(*, user: AbstractBaseUser | AnonymousUser, order_id: int) -> bool:
    """Whether ``user`` placed the order (as its customer, whatever else they are)."""
    return Order.objects.filter(pk=order_id, customer_id=user.pk).exists()


def order_event_list(*, user: AbstractBaseUser | AnonymousUser, order_id: int) -> QuerySet[OrderEvent]:
    order_check_visible(user=user, order_id=order_id)
    return OrderEvent.objects.filter(order_id=order_id).order_by("created_at", "pk")


@dataclass(frozen=True)
class OrderDeskStats:
    """What operators watch: orders per status, recent intake, the oldest order still pending.

    Counts are exact up to ``core.counting.COUNT_LIMIT`` and PostgreSQL's estimate above it:
    the statuses operators act on (pending, reserved, paid) stay small and exact, while the final
    ones grow with history and are shown as estimates, at the same cost at 10 million orders as
    at 10.
    """

    per_status: dict[str, RowCount]  # every status, zero included
    created_last_hour: RowCount
    oldest_pending_created_at: datetime | None
    # The payment deadline of the reserved order most past it: the expiry sweep (on beat, every
    # few seconds) closes such orders, so one long past its deadline means beat is not running.
    most_overdue_expires_at: datetime | None = None

    @property
    def oldest_pending_age_seconds(self) -> float:
        if self.oldest_pending_created_at is None:
            return 0.0
        return max(0.0, (timezone.now() - self.oldest_pending_created_at).total_seconds())

    @property
    def most_overdue_seconds(self) -> float:
        if self.most_overdue_expires_at is None:
            return 0.0
        return max(0.0, (timezone.now() - self.most_overdue_expires_at).total_seconds())


def _read_order_desk_stats() -> OrderDeskStats:
    # Each count reads at most COUNT_LIMIT + 1 entries of the (status, created_at, id) or the
    # (created_at, id) index; the oldest pending order is the last entry of its status.
    newest_first = Order.objects.order_by("-created_at", "-id")
    per_status = {status.value: count_bounded(newest_first.filter(status=status)) for status in OrderStatus}
    last_hour = count_bounded(newest_first.filter(created_at__gte=timezone.now() - timedelta(hours=1)))
    oldest_pending = (
        Order.objects.filter(status=OrderStatus.PENDING)
        .order_by("created_at", "id")
        .values_list("created_at", flat=True)
        .first()
    )
    # The partial index on reserved orders' deadlines: the first entry.
    overdue = (
        Order.objects.filter(status=OrderStatus.RESERVED)
        .order_by("expires_at", "id")
        .values_list("expires_at", flat=True)
        .first()
    )
    if overdue is not None and overdue > timezone.now():
        overdue = None
    return OrderDeskStats(per_status, last_hour, oldest_pending, overdue)


def order_desk_stats() -> OrderDeskStats:
    """Staff-only figures for the admin dashboard and the metrics gauges, cached a few seconds."""
    return cached_reading(
        "order_desk_stats",
        _read_order_desk_stats,
        to_json=lambda s: [
            {status: [count.value, count.exact] for status, count in s.per_status.items()},
            [s.created_last_hour.value, s.created_last_hour.exact],
            datetime_to_json(s.oldest_pending_created_at),
            datetime_to_json(s.most_overdue_expires_at),
        ],
        from_json=lambda row: OrderDeskStats(
            {status: RowCount(*count) for status, count in row[0].items()},
            RowCount(*row[1]),
            datetime_from_json(row[2]),
            datetime_from_json(row[3]),
        ),
    )


def stock_claim_discrepancies() -> list[tuple[str, int, int]]:
    """(sku, claimed, units of its pending orders) of every product whose claims are off."""
    pending = dict(
        OrderLine.objects.filter(order__status=OrderStatus.PENDING)
        .values("product_id")
        .annotate(units=Sum("quantity"))
        .values_list("product_id", "units")
    )
    return [
        (sku, claimed, pending.get(pk, 0))
        for pk, sku, claimed in Product.objects.order_by("pk").values_list("pk", "sku", "claimed")
        if claimed != pending.get(pk, 0)
    ]
