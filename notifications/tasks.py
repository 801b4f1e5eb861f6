"""Notification tasks: take an id, make one attempt through a service, retry or give up.

Webhooks are routed to the ``webhooks`` queue, e-mails and the fan-out to ``email``
(config/celery_app.py), so slow merchant endpoints never delay stock reservation or a customer's
e-mail. The send tasks have their own time limits (``NOTIFY_SEND_*_TIME_LIMIT_SECONDS``), above
one attempt's deadline and below the send lease. Retries are new messages published with a
countdown (exponential backoff with full jitter, computed by the service);
``NOTIFY_MAX_RETRIES`` bounds the attempts, so Celery's own retry limit is off. A task that
gives up raises, and its message is rejected without requeue: RabbitMQ dead-letters it to
``webhooks.dlq`` or ``email.dlq``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django import db
from django.conf import settings

from notifications.attempts import Channel, Outcome, SendResult, Verdict, next_retry_in
from notifications.errors import NotificationAttemptFailed, NotificationGaveUp
from notifications.metrics import delivery_count
from notifications.services import (
    email_notification_send,
    email_notifications_send,
    notifications_fan_out,
    webhook_delivery_send,
)
from notifications.services.circuit import webhook_endpoint_disabled_mail
from notifications.services.retention import delivery_attempt_prune

logger = logging.getLogger(__name__)

# PostgreSQL unreachable: as transient as a 503, so retried on the same schedule and budget.
DATABASE_OUTAGES = (db.OperationalError, db.InterfaceError)
# An attempt that reached the soft time limit (a database that answers too slowly: the HTTP
# request has its own, shorter, deadline) is retried on the same terms.
TRANSIENT = (*DATABASE_OUTAGES, SoftTimeLimitExceeded)
SEND_LIMITS = {
    "soft_time_limit": settings.NOTIFY_SEND_SOFT_TIME_LIMIT_SECONDS,
    "time_limit": settings.NOTIFY_SEND_TIME_LIMIT_SECONDS,
}


def _attempt(task: Task[Any, Any], channel: Channel, send: Callable[[int], SendResult], *, waited: int = 0) -> str:
    """``waited``: how many of the message's retries were waits, not attempts (``Outcome.WAIT``)."""
    attempt = task.request.retries + 1 - waited
    try:
        result = send(attempt)
    except TRANSIENT as exc:
        retry_in = next_retry_in(verdict=Verdict.RETRY, attempt=attempt)
        if retry_in is None:
            raise
        raise task.retry(countdown=retry_in, exc=exc) from exc
    delivery_count(channel, result.outcome)
    if result.outcome is Outcome.WAIT:
        raise task.retry(countdown=result.retry_in, kwargs={"waited": waited + 1})
    if result.outcome is Outcome.RETRY:
        raise task.retry(countdown=result.retry_in, exc=NotificationAttemptFailed(result.detail))
    if result.outcome is Outcome.GAVE_UP:
        raise NotificationGaveUp(result.detail)
    return result.outcome.value


# Giving up is expected: logged without a traceback (the attempts are recorded in PostgreSQL).
@shared_task(bind=True, max_retries=None, throws=(NotificationGaveUp,), **SEND_LIMITS)
def webhook_delivery_send_task(self: Task[Any, Any], delivery_id: int, waited: int = 0) -> str:
    return _attempt(
        self,
        Channel.WEBHOOK,
        lambda attempt: webhook_delivery_send(delivery_id=delivery_id, attempt=attempt, waited=waited),
        waited=waited,
    )


@shared_task(bind=True, max_retries=None, throws=(NotificationGaveUp,), **SEND_LIMITS)
def email_notification_send_task(self: Task[Any, Any], email_id: int) -> str:
    return _attempt(self, Channel.EMAIL, lambda attempt: email_notification_send(email_id=email_id, attempt=attempt))


@shared_task(
    autoretry_for=TRANSIENT,
    retry_backoff=1,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=8,
    **SEND_LIMITS,
)
def email_notifications_send_task(email_ids: list[int]) -> str:
    """The first attempt at e-mails published together; what it leaves goes to
    :func:`email_notification_send_task`, one e-mail each (notifications/services/emails.py)."""
    batch = email_notifications_send(email_ids=email_ids)
    delivery_count(Channel.EMAIL, Outcome.SENT, len(batch.sent))
    delivery_count(Channel.EMAIL, Outcome.SKIPPED, len(batch.skipped))
    return f"{len(batch.sent)} sent, {len(batch.skipped)} skipped, {len(batch.handed_over)} handed over"


@shared_task(
    autoretry_for=DATABASE_OUTAGES,
    retry_backoff=1,
    retry_backoff_max=60,
    retry_jitter=True,
    max_retries=8,
)
def notification_fan_out_task(events: list[list[Any]]) -> str:
    """``events``: ``[event id, event type, recipient or None]`` each, as published."""
    deliveries, emails = notifications_fan_out(events=events)
    return f"{deliveries} deliveries, {emails} e-mails"


@shared_task(
    autoretry_for=(*DATABASE_OUTAGES, OSError),
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
)
def webhook_endpoint_disabled_mail_task(endpoint_id: int) -> int:
    """Tell staff an endpoint was disabled for failing too long (routed with e-mail)."""
    return webhook_endpoint_disabled_mail(endpoint_id=endpoint_id)


# Periodic: a failed run is acknowledged, not dead-lettered; the next tick prunes what it left.
@shared_task(acks_on_failure_or_timeout=True)
def delivery_attempt_prune_task() -> int:
    deleted = delivery_attempt_prune()
    logger.info("Deleted %d webhook delivery attempt(s) past their retention", deleted)
    return deleted
