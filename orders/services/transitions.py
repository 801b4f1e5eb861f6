"""The one way an order changes status."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone
from django_fsm import can_proceed

from core.errors import Conflict, DomainError
from inventory.services import stock_release
from notifications.services import notification_publish
from orders.error_codes import OrderErrorCode
from orders.lock_objects import order_lock
from orders.models import Actor, Order, OrderEvent, OrderStatus
from orders.serializers import order_payload

logger = logging.getLogger(__name__)

# Transitions after which the order's reserved stock goes back on the shelf.
RELEASING_TRANSITIONS = frozenset({"cancel", "expire", "refund"})
# Transitions an API caller may ask for by name (the others are the system's).
API_TRANSITIONS = frozenset({"cancel", "pay", "ship", "complete", "refund"})


class InvalidTransition(Conflict):
    code = OrderErrorCode.INVALID_TRANSITION


class TransitionNotPermitted(DomainError):
    status_code = 403
    code = OrderErrorCode.TRANSITION_NOT_PERMITTED


def transition_actors(name: str) -> set[str]:
    """Who may trigger transition ``name``, from any source state (the state table's last column)."""
    transitions = getattr(Order, name)._django_fsm.transitions.values()
    return {actor for meta in transitions for actor in meta.custom.get("actors", ())}


def order_transition(
    *,
    order: Order,
    name: str,
    actor: Actor,
    actor_user: User | None = None,
    reason: str = "",
    data: dict[str, Any] | None = None,
) -> OrderEvent:
    """Apply transition ``name`` to ``order`` and record it. Call holding the order's row lock.

    Refuses (409) a transition the state table does not allow from the current status, and
    (403) an actor the table does not list for it. Releases stock after a releasing transition,
    and publishes the event to e-mail and merchant webhooks after commit.
    """
    if actor not in transition_actors(name):
        raise TransitionNotPermitted(f"You may not {name} orders.")
    method = getattr(order, name)
    if not can_proceed(method):
        raise InvalidTransition(f"Cannot {name} an order that is {order.status}.")
    from_status = order.status
    now = timezone.now()
    method(at=now)
    order.save(update_fields=["status", "updated_at", "reserved_at", "expires_at", "paid_at"])
    if name in RELEASING_TRANSITIONS and from_status != OrderStatus.PENDING:
        stock_release(order_id=order.pk, reason=f"order {order.status}")
    event = OrderEvent.objects.create(
        order=order,
        from_status=from_status,
        to_status=order.status,
        actor=actor,
        actor_user=actor_user,
        reason=reason,
        data=data or {},
        created_at=now,
    )
    notification_publish(event_type=f"order.{order.status}", payload=order_payload(order), email=order.email)
    return event


def order_act(*, order_id: int, name: str, actor: Actor, actor_user: User | None) -> Order:
    """Entry point for the API and the admin: lock the order and apply transition ``name``."""
    if name not in API_TRANSITIONS:
        raise InvalidTransition(f"Unknown action {name!r}.")
    with transaction.atomic():
        order = order_lock(order_id=order_id)
        order_transition(order=order, name=name, actor=actor, actor_user=actor_user)
    return order
