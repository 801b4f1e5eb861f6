"""Notification tasks: take an id, make one attempt through a service, retry or give up.

Routed to the ``notifications`` queue (config/celery_app.py), so slow webhooks never delay
stock reservation. Retries are new messages published with a countdown (exponential backoff
with full jitter, computed by the service); ``NOTIFY_MAX_RETRIES`` bounds the attempts, so
Celery's own retry limit is off. A task that gives up raises, and its message is rejected
without requeue: RabbitMQ dead-letters it to ``notifications.dlq``.
"""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from notifications.errors import NotificationAttemptFailed, NotificationGaveUp
from notifications.services import Outcome, SendResult, email_notification_send, webhook_delivery_send


def _follow_up(task: Task[Any, Any], result: SendResult) -> None:
    if result.outcome is Outcome.RETRY:
        raise task.retry(countdown=result.retry_in, exc=NotificationAttemptFailed(result.detail))
    if result.outcome is Outcome.GAVE_UP:
        raise NotificationGaveUp(result.detail)


# Giving up is expected: logged without a traceback (the attempts are recorded in PostgreSQL).
@shared_task(bind=True, max_retries=None, throws=(NotificationGaveUp,))
def webhook_delivery_send_task(self: Task[Any, Any], delivery_id: int) -> str:
    result = webhook_delivery_send(delivery_id=delivery_id, attempt=self.request.retries + 1)
    _follow_up(self, result)
    return result.outcome.value


# Giving up is expected: logged without a traceback (the attempts are recorded in PostgreSQL).
@shared_task(bind=True, max_retries=None, throws=(NotificationGaveUp,))
def email_notification_send_task(self: Task[Any, Any], email_id: int) -> str:
    result = email_notification_send(email_id=email_id, attempt=self.request.retries + 1)
    _follow_up(self, result)
    return result.outcome.value
