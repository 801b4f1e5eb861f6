"""The one way an order changes status (``orders_transition``), and the actions that customers
and staff ask for through the API and the admin (``order_cancel`` ... ``order_refund``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import prefetch_related_objects
from django.utils import timezone
from django_fsm import ConcurrentTransition, can_proceed

from core.audit import audit_record
from core.errors import Conflict, DomainError
from inventory.services import stock_release, stock_unclaim
from notifications.services import Notification, notifications_publish
from orders.cache import orders_cache_replace_on_commit
from orders.error_codes import OrderErrorCode
from orders.lock_objects import order_lock
from orders.metrics import transitions_count
from orders.models import Actor, Order, OrderEvent, OrderStatus
from orders.payloads import orders_payload

# Transitions after which the order's reserved stock goes back on the shelf.
RELEASING_TRANSITIONS = frozenset({"cancel", "expire", "refund"})


class InvalidTransition(Conflict):
    code = OrderErrorCode.INVALID_TRANSITION


class TransitionNotPermitted(DomainError):
    status_code = 403
    code = OrderErrorCode.TRANSITION_NOT_PERMITTED


def _transitions(name: str) -> list[Any]:
    return list(getattr(Order, name)._django_fsm.transitions.values())


def transition_actors(name: str) -> set[str]:
    """Who may trigger transition ``name``, from any source state (the state table's last column)."""
    return {actor for meta in _transitions(name) for actor in meta.custom.get("actors", ())}


def _fields_set_by(name: str) -> tuple[str, ...]:
    return tuple({field for meta in _transitions(name) for field in meta.custom.get("sets", ())})


def orders_transition(
    *,
    orders: list[Order],
    name: str,
    actor: Actor,
    actor_user: User | None = None,
    reason: str = "",
    data: dict[str, Any] | None = None,
) -> list[OrderEvent]:
    """Apply transition ``name`` to every order and record it. Call holding their row locks.

    Refuses, changing nothing, an actor the state table does not list (403) and a transition it
    does not allow from an order's status (409); the update is compare-and-set all the same.
    Gives back the claims of orders leaving ``pending`` and the stock of a releasing
    transition, and records each order's event for e-mail and webhooks, preceded, for an order
    leaving ``pending``, by its placement (``order.pending``, as it was placed): the request that
    placed it announced nothing. Many orders at once cost the expiry sweeper a few queries per batch.
    """
    if not orders:
        return []
    if actor not in transition_actors(name):
        raise TransitionNotPermitted(f"You may not {name} orders.")
    for order in orders:
        if not can_proceed(getattr(order, name)):
            raise InvalidTransition(f"Cannot {name} an order that is {order.status}.")
    # Never before an order's last change: its updated_at versions its cached copies (orders/cache.py).
    now = max(timezone.now(), max(order.updated_at for order in orders) + timedelta(microseconds=1))
    from_statuses = {order.pk: str(order.status) for order in orders}
    leaving_pending = [order for order in orders if order.status == OrderStatus.PENDING]
    prefetch_related_objects(leaving_pending, "lines")  # for their claims and payloads
    placed = [
        Notification("order.pending", payload, order.email, occurred_at=order.created_at)
        for order, payload in zip(leaving_pending, orders_payload(leaving_pending), strict=True)
    ]
    for order in orders:
        getattr(order, name)(at=now)
        order.updated_at = now
    changed = {field: getattr(orders[0], field) for field in _fields_set_by(name)}
    by_source: dict[str, list[int]] = defaultdict(list)
    for order in orders:
        by_source[from_statuses[order.pk]].append(order.pk)
    for source, ids in by_source.items():
        updated = Order.objects.filter(pk__in=ids, status=source).update(
            status=orders[0].status, updated_at=now, **changed
        )
        if updated != len(ids):  # only possible if a caller forgot the row lock
            raise ConcurrentTransition(f"{len(ids) - updated} order(s) changed status concurrently")
    if leaving_pending:  # reserved, rejected or cancelled: what the order asked for is no longer claimed
        stock_unclaim(
            lines=[(line.product_id, line.quantity) for order in leaving_pending for line in order.lines.all()]
        )
    if name in RELEASING_TRANSITIONS:
        released = [order.pk for order in orders if from_statuses[order.pk] != OrderStatus.PENDING]
        stock_release(order_ids=released, reason=f"order {orders[0].status}")
    events = OrderEvent.objects.bulk_create(
        OrderEvent(
            order=order,
            from_status=from_statuses[order.pk],
            to_status=order.status,
            actor=actor,
            actor_user=actor_user,
            reason=reason,
            data=data or {},
            created_at=now,
        )
        for order in orders
    )
    payloads = orders_payload(orders)
    notifications_publish(
        notifications=placed
        + [
            Notification(f"order.{order.status}", payload, order.email)
            for order, payload in zip(orders, payloads, strict=True)
        ]
    )
    orders_cache_replace_on_commit(orders=orders, payloads=payloads)
    transitions_count(list(from_statuses.values()), str(orders[0].status))
    return events


def order_transition(
    *,
    order: Order,
    name: str,
    actor: Actor,
    actor_user: User | None = None,
    reason: str = "",
    data: dict[str, Any] | None = None,
) -> OrderEvent:
    """:func:`orders_transition` for one order. Call holding the order's row lock."""
    (event,) = orders_transition(
        orders=[order], name=name, actor=actor, actor_user=actor_user, reason=reason, data=data
    )
    return event


def _order_action_apply(*, order_id: int, name: str, actor: Actor, actor_user: User | None) -> Order:
    """Apply action ``name``; staff's actions are also recorded in the audit trail."""
    with transaction.atomic():
        order = order_lock(order_id=order_id)
        # Read once under the lock: the event's payload and the caller's answer both show them.
        prefetch_related_objects([order], "lines")
        before = order.status
        order_transition(order=order, name=name, actor=actor, actor_user=actor_user)
        if actor == Actor.STAFF:
            audit_record(
                actor=actor_user,
                actor_name="system",
                action=f"order.{name}",
                target_type="order",
                target_id=order.pk,
                before={"status": before},
                after={"status": order.status},
            )
    return order


# The actions customers and staff ask for (the API's POST /orders/{id}/<action>/, the admin's
# actions). Each locks the order and applies its transition; who may ask is the state table's.


def order_cancel(*, order_id: int, actor: Actor, actor_user: User | None) -> Order:
    """Cancel a pending or reserved order (owner, staff); a reserved order's stock returns."""
    return _order_action_apply(order_id=order_id, name="cancel", actor=actor, actor_user=actor_user)


def order_mark_paid(*, order_id: int, actor: Actor, actor_user: User | None) -> Order:
    """Mark a reserved order paid by hand (staff): a payment taken outside the provider."""
    return _order_action_apply(order_id=order_id, name="pay", actor=actor, actor_user=actor_user)


def order_ship(*, order_id: int, actor: Actor, actor_user: User | None) -> Order:
    return _order_action_apply(order_id=order_id, name="ship", actor=actor, actor_user=actor_user)


def order_complete(*, order_id: int, actor: Actor, actor_user: User | None) -> Order:
    return _order_action_apply(order_id=order_id, name="complete", actor=actor, actor_user=actor_user)


def order_refund(*, order_id: int, actor: Actor, actor_user: User | None) -> Order:
    """Refund a paid order (staff); its stock returns."""
    return _order_action_apply(order_id=order_id, name="refund", actor=actor, actor_user=actor_user)


OrderAction = Callable[..., Order]
# By the name the API's URL and the admin's actions use.
ORDER_ACTIONS: dict[str, OrderAction] = {
    "cancel": order_cancel,
    "pay": order_mark_paid,
    "ship": order_ship,
    "complete": order_complete,
    "refund": order_refund,
}
