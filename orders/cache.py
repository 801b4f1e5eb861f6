"""An order's representation, cached in Redis (cache-aside, ARCHITECTURE invariant 10).

``GET /orders/{id}/`` answers from the copy when there is one, else reads PostgreSQL and leaves
a copy. The copy is a versioned one (core/copies.py), versioned by the order's ``updated_at``,
which every transition raises (``orders_transition`` never moves it backwards): the transaction
of every change replaces it on commit, a copy read from the database while a change committed
never overwrites that change's, and a read that follows a write sees the write.

A copy keeps the customer's id, so a customer asking for another customer's order is refused
from it as from the database (404). Copies of orders that can still change expire after
``LIVE_SECONDS`` (the bound on a copy that could not be replaced while Redis was unreachable
from one process), those of final orders after ``FINAL_SECONDS``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.copies import Copy, copies_clear, copies_read, copies_store_on_commit
from orders.models import Order, OrderStatus

LIVE_SECONDS = 30
FINAL_SECONDS = 3600
FINAL_STATUSES = frozenset(
    {OrderStatus.REJECTED, OrderStatus.CANCELLED, OrderStatus.EXPIRED, OrderStatus.REFUNDED, OrderStatus.COMPLETED}
)
_KEY_PREFIX = "orders:order:"


@dataclass(frozen=True)
class CachedOrder:
    customer_id: int
    payload: dict[str, Any]


def order_cache_key(order_id: int) -> str:
    """Where an order's copy is kept: ``[customer id, representation]``."""
    return f"{_KEY_PREFIX}{order_id}"


def _version(updated_at: datetime) -> tuple[int]:
    return (int(updated_at.timestamp() * 1_000_000),)


def _copy(order: Order, payload: dict[str, Any]) -> Copy:
    seconds = FINAL_SECONDS if order.status in FINAL_STATUSES else LIVE_SECONDS
    return Copy(order_cache_key(order.pk), _version(order.updated_at), [order.customer_id, payload], seconds)


def order_cache_read(*, order_id: int) -> CachedOrder | None:
    """The cached representation, or None (no copy, or Redis unavailable)."""
    (data,) = copies_read(keys=[order_cache_key(order_id)])
    if data is None:
        return None
    customer_id, payload = data
    return CachedOrder(int(customer_id), payload)


def order_cache_store(*, order: Order, payload: dict[str, Any]) -> None:
    """Leave a copy of what was just read from the database (unless a newer one is there); at once
    outside a transaction, else when it commits (a rolled-back read leaves nothing)."""
    copies_store_on_commit([_copy(order, payload)])


def orders_cache_replace_on_commit(*, orders: Sequence[Order], payloads: Sequence[dict[str, Any]]) -> None:
    """Replace the orders' copies with these representations when the transaction commits.
    Call in the transaction that changed them, with their new state."""
    copies_store_on_commit([_copy(order, payload) for order, payload in zip(orders, payloads, strict=True)])


def orders_cache_clear() -> int:
    """Delete every order's copy (for a database recreated empty: tests, benchmarks)."""
    return copies_clear(prefix=_KEY_PREFIX)
