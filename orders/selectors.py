"""Reads. Every queryset is filtered by the requesting user here, not by permissions."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db.models import QuerySet

from core.errors import NotFound
from orders.error_codes import OrderErrorCode
from orders.models import Order, OrderEvent


class OrderNotFound(NotFound):
    code = OrderErrorCode.ORDER_NOT_FOUND


def _visible_orders(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Order]:
    orders = Order.objects.all()
    if getattr(user, "is_staff", False):
        return orders
    return orders.filter(customer_id=user.pk)


def order_list(*, user: AbstractBaseUser | AnonymousUser, status: str | None = None) -> QuerySet[Order]:
    orders = _visible_orders(user).prefetch_related("lines").order_by("-created_at", "-pk")
    if status:
        orders = orders.filter(status=status)
    return orders


def order_get(*, user: AbstractBaseUser | AnonymousUser, order_id: int) -> Order:
    """The order if ``user`` may see it; another customer's order is simply not found (404)."""
    try:
        return _visible_orders(user).prefetch_related("lines").get(pk=order_id)
    except Order.DoesNotExist as exc:
        raise OrderNotFound("Order not found.") from exc


def order_event_list(*, user: AbstractBaseUser | AnonymousUser, order_id: int) -> QuerySet[OrderEvent]:
    order = order_get(user=user, order_id=order_id)
    return OrderEvent.objects.filter(order=order).order_by("created_at", "pk")
