"""The boundary with the apps that produce events: ``notification_publish``."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from core.outbox import outbox_enqueue
from notifications.models import (
    EMAIL_EVENT_TYPES,
    EmailNotification,
    EventType,
    NotificationEvent,
    WebhookDelivery,
)
from notifications.selectors import webhook_endpoint_list_subscribed

WEBHOOK_DELIVERY_TASK = "notifications.tasks.webhook_delivery_send_task"
EMAIL_NOTIFICATION_TASK = "notifications.tasks.email_notification_send_task"


def notification_publish(*, event_type: str, payload: dict[str, Any], email: str | None) -> NotificationEvent:
    """Record an event and queue its webhook deliveries and customer e-mail.

    Call inside the business transaction that makes the change the event reports: the event,
    one delivery per active endpoint subscribed to ``event_type``, the e-mail (for the event
    types that mail the customer, when ``email`` is given) and their task messages commit with
    that change or not at all, and nothing is sent before the commit.

    ``payload`` is the order as the API shows it, JSON-ready. The event's id is the
    ``webhook-id`` and the body's ``id``: the same for every endpoint and every attempt.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("notification_publish must be called inside the business transaction")
    if event_type not in EventType.values:
        raise ValueError(f"Unknown notification event type {event_type!r}")
    event = NotificationEvent.objects.create(event_type=event_type, payload=payload)
    deliveries = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(event=event, endpoint=endpoint)
        for endpoint in webhook_endpoint_list_subscribed(event_type=event_type)
    )
    for delivery in deliveries:
        outbox_enqueue(task_name=WEBHOOK_DELIVERY_TASK, args=[delivery.pk])
    if email and event_type in EMAIL_EVENT_TYPES:
        notification = EmailNotification.objects.create(event=event, recipient=email)
        outbox_enqueue(task_name=EMAIL_NOTIFICATION_TASK, args=[notification.pk])
    return event
