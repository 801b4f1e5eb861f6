"""Which Django model permission each staff action needs: one map, read by the API and the admin.

The admin checks Django's model permissions (``orders.change_order`` to change an order...); the
API checks the same ones for the same actions, through :func:`staff_may` and
:func:`staff_permission`, so a support account given only ``view`` permissions can look in both
but change nothing in either. Superusers have every permission.
"""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

# action -> the permission it needs (app_label.codename).
STAFF_ACTIONS: dict[str, str] = {
    # Orders: cancelling someone else's order, marking paid, shipping, completing, refunding.
    "order.act": "orders.change_order",
    "order.retry_reservation": "orders.change_order",
    # Products and stock.
    "product.create": "inventory.add_product",
    "product.change": "inventory.change_product",
    "stock.adjust": "inventory.change_product",
    # Merchant webhooks.
    "webhook_endpoint.view": "notifications.view_webhookendpoint",
    "webhook_endpoint.add": "notifications.add_webhookendpoint",
    "webhook_endpoint.change": "notifications.change_webhookendpoint",
    "webhook_endpoint.delete": "notifications.delete_webhookendpoint",
    "webhook_delivery.view": "notifications.view_webhookdelivery",
    "webhook_delivery.resend": "notifications.change_webhookdelivery",
    "email_notification.resend": "notifications.change_emailnotification",
    # Dead letters (core.DeadLetter exists for these permissions).
    "dead_letter.view": "core.view_deadletter",
    "dead_letter.replay": "core.replay_deadletter",
    "dead_letter.purge": "core.purge_deadletter",
    # The audit trail is written by the actions above, never by people.
    "audit.view": "core.view_auditentry",
}


def staff_may(user: Any, action: str) -> bool:
    """Whether ``user`` is active staff holding the permission ``action`` needs (KeyError: no such action)."""
    permission = STAFF_ACTIONS[action]
    return bool(getattr(user, "is_active", False) and getattr(user, "is_staff", False) and user.has_perm(permission))


class _StaffPermission(BasePermission):
    action = ""

    def has_permission(self, request: Request, view: Any) -> bool:
        allowed = staff_may(request.user, self.action)
        if not allowed and getattr(request.user, "is_staff", False):
            self.message = f"This needs the {STAFF_ACTIONS[self.action]} permission."
        return allowed


def staff_permission(action: str) -> type[BasePermission]:
    """A DRF permission class: active staff with ``action``'s permission, else 403 (401 anonymous)."""
    STAFF_ACTIONS[action]
    return type(f"StaffMay_{action.replace('.', '_')}", (_StaffPermission,), {"action": action})
