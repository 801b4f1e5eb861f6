"""Reads of the notifications app. Every list here is for staff: no per-user filtering."""

from __future__ import annotations

from django.db.models import QuerySet

from notifications.models import WebhookDelivery, WebhookEndpoint


def webhook_endpoint_list() -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.order_by("-created_at", "-id")


def webhook_endpoint_list_subscribed(*, event_type: str) -> QuerySet[WebhookEndpoint]:
    """Active endpoints subscribed to ``event_type``, in id order."""
    return WebhookEndpoint.objects.filter(active=True, events__contains=[event_type]).order_by("id")


def webhook_delivery_list(*, status: str | None = None, endpoint_id: int | None = None) -> QuerySet[WebhookDelivery]:
    deliveries = WebhookDelivery.objects.select_related("event", "endpoint").order_by("-created_at", "-id")
    if status is not None:
        deliveries = deliveries.filter(status=status)
    if endpoint_id is not None:
        deliveries = deliveries.filter(endpoint_id=endpoint_id)
    return deliveries
