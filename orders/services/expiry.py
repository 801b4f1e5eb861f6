"""Unpaid orders expire at their deadline (``expires_at``), swept by beat in batches.

Deadlines live in PostgreSQL, not in delayed messages: they survive restarts, any number of
sweepers can run (each batch is claimed with ``FOR UPDATE SKIP LOCKED``), and a sweeper killed
mid-batch loses nothing, because each batch commits or rolls back as a whole.

Payment versus expiry: both lock the order row. If the payment callback takes the lock first,
the order is ``paid`` and the sweeper no longer selects it; if the sweeper does, the payment
finds the order ``expired`` and is recorded on it for refund.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from orders.models import Actor, Order, OrderStatus
from orders.services.transitions import orders_transition

# Orders per transaction: large enough to amortise the commit, small enough that the row locks
# held against concurrent payments (which wait for them) are released within a fraction of a second.
EXPIRY_BATCH_SIZE = 200


def order_expire_batch(*, now: datetime | None = None, batch_size: int = EXPIRY_BATCH_SIZE) -> int:
    """Expire up to ``batch_size`` overdue orders in one transaction; returns how many."""
    now = now or timezone.now()
    with transaction.atomic(durable=True):
        overdue = list(
            Order.objects.select_for_update(skip_locked=True)
            .filter(status=OrderStatus.RESERVED, expires_at__lte=now)
            .prefetch_related("lines")
            .order_by("expires_at", "pk")[:batch_size]
        )
        orders_transition(orders=overdue, name="expire", actor=Actor.SYSTEM, reason="payment deadline passed")
    return len(overdue)


def order_expire_overdue(
    *,
    batch_size: int = EXPIRY_BATCH_SIZE,
    time_budget_seconds: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Expire every order overdue now, batch by batch; returns how many were expired.

    With ``time_budget_seconds``, stops after the batch that exceeds it, leaving the rest to
    the next run (so one beat tick never holds a worker for long).
    """
    now = timezone.now()
    started = time.monotonic()
    expired = 0
    while True:
        count = order_expire_batch(now=now, batch_size=batch_size)
        expired += count
        if progress is not None and count:
            progress(expired)
        if count < batch_size:
            return expired
        if time_budget_seconds is not None and time.monotonic() - started > time_budget_seconds:
            return expired


def overdue_count(*, now: datetime | None = None) -> int:
    return Order.objects.filter(status=OrderStatus.RESERVED, expires_at__lte=now or timezone.now()).count()


def overdue_first(*, now: datetime | None = None, limit: int) -> list[tuple[int, datetime]]:
    """(id, payment deadline) of the ``limit`` most overdue reserved orders (the partial index)."""
    overdue = Order.objects.filter(status=OrderStatus.RESERVED, expires_at__lte=now or timezone.now())
    return list(overdue.order_by("expires_at", "pk").values_list("pk", "expires_at")[:limit])
