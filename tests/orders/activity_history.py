"""Orders, transitions and task failures spread over past minutes, written in bulk, as the activity
rollup (orders/activity.py) finds them in a running system."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from django.contrib.auth.models import User

from core.models import TaskFailure
from orders.models import Actor, Order, OrderEvent, OrderStatus


def activity_history(
    *,
    customer: User,
    placed: Mapping[datetime, int],
    reserved: Mapping[datetime, int] | None = None,
    expired: Mapping[datetime, int] | None = None,
    failed: Mapping[datetime, int] | None = None,
) -> None:
    """``placed[t]`` orders created at ``t``; ``reserved[t]`` and ``expired[t]`` transitions of
    some of them at ``t``; ``failed[t]`` task failures (dead letters) at ``t``."""
    orders = Order.objects.bulk_create(
        Order(customer=customer, email=customer.email, currency="USD", total="1.00", created_at=at)
        for at, count in placed.items()
        for _ in range(count)
    )
    events: list[OrderEvent] = []
    remaining = iter(orders)
    for status, moments in ((OrderStatus.RESERVED, reserved or {}), (OrderStatus.EXPIRED, expired or {})):
        for at, count in moments.items():
            for _ in range(count):
                order = next(remaining)
                events.append(
                    OrderEvent(order=order, from_status="x", to_status=status, actor=Actor.SYSTEM, created_at=at)
                )
    OrderEvent.objects.bulk_create(events)
    TaskFailure.objects.bulk_create(
        TaskFailure(task_id=f"t-{at:%H%M}-{n}", task_name="t", error="boom", failed_at=at)
        for at, count in (failed or {}).items()
        for n in range(count)
    )
