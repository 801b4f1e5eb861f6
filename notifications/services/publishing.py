"""The boundary with the apps that produce events: ``notification_publish`` and its batch form."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction

from core.outbox import OutboxTask, outbox_enqueue_many
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


@dataclass(frozen=True)
class Notification:
    event_type: str
    payload: dict[str, Any]
    email: str | None


def notifications_publish(*, notifications: Sequence[Notification]) -> list[NotificationEvent]:
    """Record events and queue their webhook deliveries and customer e-mails.

    Call inside the business transaction that makes the change the events report: each event,
    one delivery per active endpoint subscribed to its type, the e-mail (for the event types
    that mail the customer, when an address is given) and their task messages commit with that
    change or not at all, and nothing is sent before the commit. Rows are written in bulk, so a
    batch of events (the expiry sweeper's) costs a handful of statements.

    ``payload`` is the order as the API shows it, JSON-ready. An event's id is the
    ``webhook-id`` and the body's ``id``: the same for every endpoint and every attempt.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("notification_publish must be called inside the business transaction")
    for notification in notifications:
        if notification.event_type not in EventType.values:
            raise ValueError(f"Unknown notification event type {notification.event_type!r}")
    events = NotificationEvent.objects.bulk_create(
        NotificationEvent(event_type=n.event_type, payload=n.payload) for n in notifications
    )
    endpoints = {
        event_type: list(webhook_endpoint_list_subscribed(event_type=event_type))
        for event_type in {n.event_type for n in notifications}
    }
    deliveries = WebhookDelivery.objects.bulk_create(
        WebhookDelivery(event=event, endpoint=endpoint) for event in events for endpoint in endpoints[event.event_type]
    )
    emails = EmailNotification.objects.bulk_create(
        EmailNotification(event=event, recipient=n.email)
        for event, n in zip(events, notifications, strict=True)
        if n.email and n.event_type in EMAIL_EVENT_TYPES
    )
    outbox_enqueue_many(
        [OutboxTask(WEBHOOK_DELIVERY_TASK, [delivery.pk]) for delivery in deliveries]
        + [OutboxTask(EMAIL_NOTIFICATION_TASK, [email.pk]) for email in emails]
    )
    return events


def notification_publish(*, event_type: str, payload: dict[str, Any], email: str | None) -> NotificationEvent:
    """:func:`notifications_publish` for one event."""
    (event,) = notifications_publish(notifications=[Notification(event_type, payload, email)])
    return event
