"""Reads of the notifications app. Every list here is for staff: no per-user filtering."""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta

from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone

from notifications.models import NotificationEvent, WebhookDelivery, WebhookEndpoint


def webhook_endpoint_list() -> QuerySet[WebhookEndpoint]:
    """Endpoints the API shows (not deleted), newest first."""
    return WebhookEndpoint.objects.filter(deleted_at__isnull=True).order_by("-created_at", "-id")


def webhook_endpoint_get(*, endpoint_id: int) -> WebhookEndpoint:
    """One endpoint the API shows; 404 if there is none (or it was deleted)."""
    return get_object_or_404(WebhookEndpoint, pk=endpoint_id, deleted_at__isnull=True)


def webhook_delivery_get(*, delivery_id: int) -> WebhookDelivery:
    return get_object_or_404(WebhookDelivery.objects.select_related("event", "endpoint"), pk=delivery_id)


def webhook_endpoint_list_subscribed(*, event_type: str) -> QuerySet[WebhookEndpoint]:
    """Active endpoints subscribed to ``event_type``, in id order."""
    return WebhookEndpoint.objects.filter(active=True, events__contains=[event_type]).order_by("id")


def webhook_event_types_subscribed(*, event_types: Collection[str]) -> set[str]:
    """Which of ``event_types`` some active endpoint is subscribed to (one indexed lookup)."""
    subscribed = WebhookEndpoint.objects.filter(active=True, events__overlap=list(event_types))
    return {event_type for events in subscribed.values_list("events", flat=True) for event_type in events} & set(
        event_types
    )


def webhook_delivery_list(*, status: str | None = None, endpoint_id: int | None = None) -> QuerySet[WebhookDelivery]:
    deliveries = WebhookDelivery.objects.select_related("event", "endpoint").order_by("-created_at", "-id")
    if status is not None:
        deliveries = deliveries.filter(status=status)
    if endpoint_id is not None:
        deliveries = deliveries.filter(endpoint_id=endpoint_id)
    return deliveries


# An earlier event of an order with no delivery to an endpoint yet, recorded less than this long
# ago, may still be fanned out to it (fan-outs of one order's events can run side by side on two
# worker processes): a later delivery waits for it. Older, it was not for this endpoint.
FAN_OUT_GRACE = timedelta(minutes=5)


def webhook_delivery_blocking(*, delivery: WebhookDelivery) -> WebhookDelivery | NotificationEvent | None:
    """What holds a delivery back so that its endpoint gets the order's events in sequence: the
    first delivery of an earlier event of the same order to the same endpoint that is still on
    its way (pending, or failed with another attempt scheduled), or an earlier event of the
    order, of a type the endpoint subscribes to, recorded within ``FAN_OUT_GRACE`` and not yet
    fanned out to it; or None.

    A dead-lettered delivery, or one failed with nothing scheduled (its endpoint was
    deactivated), holds nothing back: it may never be sent.
    """
    if delivery.order_id is None or delivery.sequence is None:
        return None
    unfanned = (
        NotificationEvent.objects.filter(
            order_id=delivery.order_id,
            sequence__lt=delivery.sequence,
            event_type__in=delivery.endpoint.events,
            created_at__gte=timezone.now() - FAN_OUT_GRACE,
        )
        .exclude(deliveries__endpoint_id=delivery.endpoint_id)
        .order_by("sequence")
        .first()
    )
    if unfanned is not None:
        return unfanned
    in_flight = Q(status=WebhookDelivery.Status.PENDING) | Q(
        status=WebhookDelivery.Status.FAILED, next_attempt_at__isnull=False
    )
    return (
        WebhookDelivery.objects.filter(
            in_flight,
            endpoint_id=delivery.endpoint_id,
            order_id=delivery.order_id,
            sequence__lt=delivery.sequence,
        )
        .order_by("sequence")
        .first()
    )
