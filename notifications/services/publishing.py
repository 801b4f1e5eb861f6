"""The boundary with the apps that produce events: ``notifications_publish``, and the fan-out
of events to their webhook deliveries and e-mails that a worker does after the commit."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Max
from django.utils import timezone

from core.outbox import OutboxTask, outbox_enqueue_many
from notifications.models import (
    EMAIL_EVENT_TYPES,
    EmailNotification,
    EventType,
    NotificationEvent,
    WebhookDelivery,
)
from notifications.selectors import webhook_endpoint_list_subscribed, webhook_event_types_subscribed

WEBHOOK_DELIVERY_TASK = "notifications.tasks.webhook_delivery_send_task"
EMAIL_NOTIFICATION_TASK = "notifications.tasks.email_notification_send_task"
# E-mails published together are first sent together, this many to a task at most
# (notifications/services/emails.py).
EMAIL_BATCH_TASK = "notifications.tasks.email_notifications_send_task"
EMAIL_BATCH_SIZE = 50
FAN_OUT_TASK = "notifications.tasks.notification_fan_out_task"
# Up to this many events (one order's transition, which may announce its placement too; a
# reservation batch's, two for each of its up to 50 orders), the transaction writes their
# e-mails itself, in one statement, and saves a task per batch; a bigger batch (the expiry
# sweeper's, up to 200) is fanned out by one task, so the sweeper's transaction stays short.
MAX_EVENTS_MAILED_IN_TRANSACTION = 100


@dataclass(frozen=True)
class Notification:
    event_type: str
    payload: dict[str, Any]
    email: str | None
    # When it happened, if not now (the event's ``created_at``, the webhook body's too).
    occurred_at: datetime | None = None


def notifications_publish(
    *, notifications: Sequence[Notification], enqueue_with: Sequence[OutboxTask] = ()
) -> list[NotificationEvent]:
    """Record events, and their e-mails and webhook deliveries or the task that creates them.

    Call inside the business transaction whose change the events report: all of it commits with
    that change, and nothing is sent before. ``enqueue_with`` are the caller's own follow-up
    tasks, written in the same outbox statement. A batch larger than
    ``MAX_EVENTS_MAILED_IN_TRANSACTION`` (the expiry sweeper's) is fanned out by one task
    (:func:`notifications_fan_out`); fewer events write their e-mails here, and queue a fan-out
    for their deliveries only if some active endpoint subscribes to one of their types.
    ``payload`` is the order as the API shows it; an event's id is the ``webhook-id``.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("notifications_publish must be called inside the business transaction")
    for notification in notifications:
        if notification.event_type not in EventType.values:
            raise ValueError(f"Unknown notification event type {notification.event_type!r}")
    order_ids = [_order_id(n.payload) for n in notifications]
    sequences = _sequences_next(order_ids)
    events = NotificationEvent.objects.bulk_create(
        NotificationEvent(
            event_type=n.event_type,
            payload=n.payload,
            created_at=n.occurred_at or timezone.now(),
            order_id=order_id,
            sequence=sequence,
        )
        for n, order_id, sequence in zip(notifications, order_ids, sequences, strict=True)
    )
    recipients = [n.email if n.email and n.event_type in EMAIL_EVENT_TYPES else None for n in notifications]
    tasks = list(enqueue_with)
    if len(events) > MAX_EVENTS_MAILED_IN_TRANSACTION:
        fan_out = [[str(e.id), e.event_type, recipient] for e, recipient in zip(events, recipients, strict=True)]
        tasks.append(OutboxTask(FAN_OUT_TASK, [fan_out]))
    elif events:
        subscribed = webhook_event_types_subscribed(event_types={event.event_type for event in events})
        if subscribed:
            fan_out = [[str(e.id), e.event_type, None] for e in events if e.event_type in subscribed]
            tasks.append(OutboxTask(FAN_OUT_TASK, [fan_out]))
        emails = EmailNotification.objects.bulk_create(
            EmailNotification(event=event, recipient=recipient)
            for event, recipient in zip(events, recipients, strict=True)
            if recipient
        )
        tasks += _email_batches([email.pk for email in emails])
    outbox_enqueue_many(tasks)
    return events


def _email_batches(email_ids: Sequence[int]) -> list[OutboxTask]:
    ids = sorted(email_ids)
    return [
        OutboxTask(EMAIL_BATCH_TASK, [ids[start : start + EMAIL_BATCH_SIZE]])
        for start in range(0, len(ids), EMAIL_BATCH_SIZE)
    ]


def _order_id(payload: dict[str, Any]) -> int | None:
    value = payload.get("id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _sequences_next(order_ids: Sequence[int | None]) -> list[int | None]:
    """The next sequence numbers of each order, in the order given (None where there is no order).

    Reads each order's last number (one indexed query). Call in the transaction that changed the
    orders, which holds their rows locked until it commits: two transactions never number one
    order's events at once (the unique constraint on order and sequence would refuse it).
    """
    wanted = {order_id for order_id in order_ids if order_id is not None}
    last: dict[int, int] = {}
    if wanted:
        rows = (
            NotificationEvent.objects.filter(order_id__in=wanted)
            .values("order_id")
            .annotate(last=Max("sequence"))
            .values_list("order_id", "last")
        )
        last = {order_id: number or 0 for order_id, number in rows if order_id is not None}
    numbered: list[int | None] = []
    for order_id in order_ids:
        if order_id is None:
            numbered.append(None)
            continue
        last[order_id] = last.get(order_id, 0) + 1
        numbered.append(last[order_id])
    return numbered


# Inserts that skip the rows already there and return only the new ones, so a fan-out that runs
# again (a redelivered or relayed message) queues no second send of anything.
_INSERT_DELIVERIES = f"""
    INSERT INTO {WebhookDelivery._meta.db_table}
        (event_id, endpoint_id, order_id, sequence, status, attempt_count, last_error, created_at, updated_at)
    SELECT new.event_id, new.endpoint_id, event.order_id, event.sequence, %(status)s, 0, '', %(now)s, %(now)s
    FROM unnest(%(event_ids)s::uuid[], %(endpoint_ids)s::bigint[]) AS new (event_id, endpoint_id)
    JOIN {NotificationEvent._meta.db_table} AS event ON event.id = new.event_id
    ORDER BY new.event_id, new.endpoint_id
    ON CONFLICT (event_id, endpoint_id) DO NOTHING
    RETURNING id
"""  # noqa: S608 - the table names are the models', the values are parameters
_INSERT_EMAILS = f"""
    INSERT INTO {EmailNotification._meta.db_table}
        (event_id, recipient, status, attempt_count, last_error, created_at, updated_at)
    SELECT event_id, recipient, %(status)s, 0, '', %(now)s, %(now)s
    FROM unnest(%(event_ids)s::uuid[], %(recipients)s::text[]) AS new (event_id, recipient)
    ORDER BY event_id
    ON CONFLICT (event_id) DO NOTHING
    RETURNING id
"""  # noqa: S608


def _insert_returning_ids(sql: str, params: dict[str, Any]) -> list[int]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [row[0] for row in cursor.fetchall()]


def notifications_fan_out(*, events: Sequence[Sequence[Any]]) -> tuple[int, int]:
    """Create the deliveries and e-mails of published events and queue their sends.

    ``events`` are ``[event id, event type, recipient or None]`` as :func:`notifications_publish`
    recorded them. One delivery per active endpoint subscribed to the event's type when this
    runs, one e-mail per event with a recipient. Idempotent: the unique constraints (one
    delivery per event and endpoint, one e-mail per event) let a repeated run create nothing
    and queue nothing. Returns the numbers of deliveries and e-mails created.
    """
    now = timezone.now()
    by_type: dict[str, list[uuid.UUID]] = defaultdict(list)
    for event_id, event_type, _ in events:
        by_type[event_type].append(uuid.UUID(event_id))
    with transaction.atomic(durable=True):
        delivery_events: list[uuid.UUID] = []
        delivery_endpoints: list[int] = []
        for event_type, event_ids in by_type.items():
            endpoint_ids = list(webhook_endpoint_list_subscribed(event_type=event_type).values_list("id", flat=True))
            for event_id in event_ids:
                delivery_events += [event_id] * len(endpoint_ids)
                delivery_endpoints += endpoint_ids
        deliveries = []
        if delivery_events:
            deliveries = _insert_returning_ids(
                _INSERT_DELIVERIES,
                {
                    "status": WebhookDelivery.Status.PENDING,
                    "now": now,
                    "event_ids": delivery_events,
                    "endpoint_ids": delivery_endpoints,
                },
            )
        mailed = [(uuid.UUID(event_id), recipient) for event_id, _, recipient in events if recipient]
        emails = []
        if mailed:
            emails = _insert_returning_ids(
                _INSERT_EMAILS,
                {
                    "status": EmailNotification.Status.PENDING,
                    "now": now,
                    "event_ids": [event_id for event_id, _ in mailed],
                    "recipients": [recipient for _, recipient in mailed],
                },
            )
        outbox_enqueue_many(
            [OutboxTask(WEBHOOK_DELIVERY_TASK, [delivery_id]) for delivery_id in deliveries] + _email_batches(emails)
        )
    return len(deliveries), len(emails)
