"""Every row lock on orders is taken here, the same way each time."""

from __future__ import annotations

from orders.models import Order


def order_lock(*, order_id: int) -> Order:
    """Lock the order row until the end of the current transaction. Call inside one.

    Raises ``Order.DoesNotExist`` if there is no such order.
    """
    return Order.objects.select_for_update(of=("self",)).get(pk=order_id)
