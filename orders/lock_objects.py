"""Every row lock on orders is taken here, the same way each time."""

from __future__ import annotations

from django.db import connection

from core.advisory_locks import advisory_lock_key
from orders.models import Order, OrderStatus

# The advisory lock that lets one reservation batch run at a time (see reservation_turn_wait).
_RESERVATION_TURN = advisory_lock_key("orders:reservation-turn")


def order_lock(*, order_id: int) -> Order:
    """Lock the order row until the end of the current transaction. Call inside one.

    Raises ``Order.DoesNotExist`` if there is no such order.
    """
    return Order.objects.select_for_update(of=("self",)).get(pk=order_id)


def orders_lock_pending(*, exclude: int, limit: int) -> list[Order]:
    """Lock up to ``limit`` pending orders other than ``exclude``, oldest first, skipping those
    another transaction holds (never waiting). Call inside a transaction.

    Served by the (status, created_at, id) index: it reads only pending orders however many
    others there are.
    """
    return list(
        Order.objects.select_for_update(of=("self",), skip_locked=True)
        .filter(status=OrderStatus.PENDING)
        .exclude(pk=exclude)
        .order_by("created_at", "pk")[:limit]
    )


def reservation_turn_wait() -> None:
    """Wait until no other reservation batch runs, and hold the turn until the end of the
    current transaction (a transaction-level advisory lock, so PgBouncer's transaction pooling
    keeps it). Call inside one, before any row lock."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_RESERVATION_TURN])
