"""The transactional outbox: tasks are recorded with the business change, published after.

``outbox_enqueue`` is the one way the system enqueues a task. It must be called inside the
transaction that makes the change the task follows up on; the row commits (or rolls back) with
it, so an accepted change is never without its follow-up and no message leaves before commit.
After commit the message is published at once with broker confirms; whatever that misses (a
broker outage, a crash) the relay publishes later. Consumers must therefore be idempotent.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from datetime import timedelta
from typing import Any, cast

from django.db import transaction
from django.utils import timezone
from django_guid import get_guid
from kombu import Connection
from kombu.connection import ConnectionPool

from config.celery_app import app
from core.models import OutboxMessage

logger = logging.getLogger(__name__)

# How long after a failed publish the web process stops trying to publish after commit and
# leaves the work to the relay, so a broker outage does not add a timeout to every request.
BROKER_BACKOFF_SECONDS = 5.0
# Rows younger than this are left to the after-commit publisher, which is normally faster.
RELAY_GRACE = timedelta(seconds=2)
# Rows per relay transaction: small enough to hold the row locks briefly, large enough to
# drain a backlog of thousands within a few beat intervals.
RELAY_BATCH_SIZE = 200

_broker_unavailable_until = 0.0


def outbox_enqueue(*, task_name: str, args: list[Any], kwargs: dict[str, Any] | None = None) -> uuid.UUID:
    """Record a task to run after the current transaction commits. Call inside that transaction."""
    connection = transaction.get_connection()
    if not connection.in_atomic_block:
        raise RuntimeError("outbox_enqueue must be called inside a transaction")
    message = OutboxMessage.objects.create(
        task_name=task_name, args=args, kwargs=kwargs or {}, request_id=get_guid() or ""
    )
    transaction.on_commit(functools.partial(_publish_after_commit, message.id))
    return message.id


def _publish(message: OutboxMessage, *, retry: bool, connection: Connection | None = None) -> None:
    app.send_task(
        message.task_name,
        args=message.args,
        kwargs=message.kwargs,
        task_id=str(message.id),
        headers={"request_id": message.request_id},
        retry=retry,
        connection=connection,
    )


def _mark_published(message_id: uuid.UUID) -> None:
    OutboxMessage.objects.filter(pk=message_id, published_at__isnull=True).update(published_at=timezone.now())


def _publish_after_commit(message_id: uuid.UUID) -> None:
    global _broker_unavailable_until
    if time.monotonic() < _broker_unavailable_until:
        return
    try:
        message = OutboxMessage.objects.get(pk=message_id)
        pool = cast(ConnectionPool, app.pool)  # the broker connection pool (celery-types says otherwise)
        with pool.acquire(block=True) as connection:
            # One connection attempt. ``retry=False`` covers the publish only: kombu would still
            # retry (re)connecting for up to ~6 s with a refused connection (celery/celery#6046),
            # and the request would wait for it.
            connection.ensure_connection(max_retries=0)
            _publish(message, retry=False, connection=connection)
    except Exception as exc:  # the relay publishes it later; the request must not fail
        _broker_unavailable_until = time.monotonic() + BROKER_BACKOFF_SECONDS
        logger.warning("Publish of outbox message %s deferred to the relay: %s", message_id, exc)
        return
    _broker_unavailable_until = 0.0
    _mark_published(message_id)


def outbox_relay(*, batch_size: int = RELAY_BATCH_SIZE, grace: timedelta = RELAY_GRACE) -> int:
    """Publish unpublished messages older than ``grace``; returns how many were published.

    Safe with several relays at once: each batch is claimed with ``FOR UPDATE SKIP LOCKED``.
    A failure to publish stops the run (the broker is likely down); the next run resumes.
    """
    published = 0
    while True:
        with transaction.atomic(durable=True):
            batch = list(
                OutboxMessage.objects.select_for_update(skip_locked=True)
                .filter(published_at__isnull=True, created_at__lte=timezone.now() - grace)
                .order_by("created_at")[:batch_size]
            )
            for message in batch:
                try:
                    _publish(message, retry=True)
                except Exception as exc:
                    OutboxMessage.objects.filter(pk=message.pk).update(
                        attempts=message.attempts + 1, last_error=str(exc)[:2000]
                    )
                    logger.warning("Outbox relay stopped: %s", exc)
                    return published
                OutboxMessage.objects.filter(pk=message.pk).update(
                    published_at=timezone.now(), attempts=message.attempts + 1
                )
                published += 1
        if len(batch) < batch_size:
            return published


def outbox_purge_published(*, older_than: timedelta) -> int:
    deleted, _ = OutboxMessage.objects.filter(published_at__lt=timezone.now() - older_than).delete()
    return deleted
