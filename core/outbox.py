"""The transactional outbox: tasks are recorded with the business change, published after.

``outbox_enqueue`` is the one way the system enqueues a task. It must be called inside the
transaction that makes the change the task follows up on; the row commits (or rolls back) with
it, so an accepted change is never without its follow-up and no message leaves before commit.
After commit the message is published at once with broker confirms; whatever that misses (a
broker outage, a crash) the relay publishes later. Consumers must therefore be idempotent.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, cast

from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django_guid import get_guid
from kombu import Connection, Producer
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
# How long a batch of publishes may wait for the broker's confirms.
CONFIRM_TIMEOUT_SECONDS = 10.0

_broker_unavailable_until = 0.0


@dataclass(frozen=True)
class OutboxTask:
    task_name: str
    args: list[Any]
    kwargs: dict[str, Any] = field(default_factory=dict)


def outbox_enqueue_many(tasks: Sequence[OutboxTask]) -> list[uuid.UUID]:
    """Record tasks to run after the current transaction commits. Call inside that transaction.

    The rows are written in one statement and published together after commit.
    """
    if not transaction.get_connection().in_atomic_block:
        raise RuntimeError("outbox_enqueue must be called inside a transaction")
    if not tasks:
        return []
    request_id = get_guid() or ""
    messages = OutboxMessage.objects.bulk_create(
        OutboxMessage(task_name=task.task_name, args=task.args, kwargs=task.kwargs, request_id=request_id)
        for task in tasks
    )
    transaction.on_commit(functools.partial(_publish_after_commit, messages))
    return [message.id for message in messages]


def outbox_enqueue(*, task_name: str, args: list[Any], kwargs: dict[str, Any] | None = None) -> uuid.UUID:
    """Record one task to run after the current transaction commits. Call inside that transaction."""
    (message_id,) = outbox_enqueue_many([OutboxTask(task_name, args, kwargs or {})])
    return message_id


class PublishNotConfirmed(Exception):
    """The broker refused (nack) or did not confirm a published message in time."""


def _publish_confirmed(messages: Sequence[OutboxMessage], connection: Connection) -> None:
    """Publish every message, then wait until the broker has confirmed them all.

    Publisher confirms one message at a time cost a broker round trip (and, for quorum queues,
    a log flush) each. Here the messages are published back to back on a channel in confirm
    mode and the confirms, which RabbitMQ may group (``multiple``), are collected afterwards:
    one wait for the batch. Raises if any message is nacked or not confirmed in time; the
    caller then leaves the whole batch to be published again (consumers are idempotent).
    """
    channel: Any = connection.channel()
    unconfirmed = set(range(1, len(messages) + 1))  # delivery tags of a fresh confirm-mode channel
    refused: list[int] = []

    def on_ack(delivery_tag: int, multiple: bool) -> None:
        if multiple:
            unconfirmed.difference_update(range(1, delivery_tag + 1))
        else:
            unconfirmed.discard(delivery_tag)

    def on_nack(delivery_tag: int, multiple: bool) -> None:
        refused.append(delivery_tag)
        on_ack(delivery_tag, multiple)

    try:
        channel.confirm_select()
        channel.events["basic_ack"].add(on_ack)
        channel.events["basic_nack"].add(on_nack)
        # The transport makes every publish wait for its own confirm; publish without waiting here.
        channel.basic_publish = channel._basic_publish
        producer = Producer(channel)
        for message in messages:
            app.send_task(
                message.task_name,
                args=message.args,
                kwargs=message.kwargs,
                task_id=str(message.id),
                headers={"request_id": message.request_id},
                producer=producer,
                retry=False,
            )
        deadline = time.monotonic() + CONFIRM_TIMEOUT_SECONDS
        while unconfirmed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishNotConfirmed(f"{len(unconfirmed)} message(s) not confirmed in time")
            connection.drain_events(timeout=remaining)
        if refused:
            raise PublishNotConfirmed(f"{len(refused)} message(s) refused by the broker")
    finally:
        with contextlib.suppress(Exception):
            channel.close()


def _publish_after_commit(messages: list[OutboxMessage]) -> None:
    global _broker_unavailable_until
    if time.monotonic() < _broker_unavailable_until:
        return
    try:
        pool = cast(ConnectionPool, app.pool)  # the broker connection pool (celery-types says otherwise)
        with pool.acquire(block=True) as connection:
            # One connection attempt: kombu would otherwise retry (re)connecting for up to ~6 s
            # with a refused connection (celery/celery#6046), and the request would wait for it.
            connection.ensure_connection(max_retries=0)
            _publish_confirmed(messages, connection)
    except Exception as exc:  # the relay publishes them later; the request must not fail
        _broker_unavailable_until = time.monotonic() + BROKER_BACKOFF_SECONDS
        logger.warning("Publish of %d outbox message(s) deferred to the relay: %s", len(messages), exc)
        return
    _broker_unavailable_until = 0.0
    OutboxMessage.objects.filter(pk__in=[m.id for m in messages], published_at__isnull=True).update(
        published_at=timezone.now()
    )


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
            if not batch:
                return published
            claimed = OutboxMessage.objects.filter(pk__in=[message.pk for message in batch])
            try:
                with app.connection_for_write() as connection:
                    connection.ensure_connection(max_retries=3)
                    _publish_confirmed(batch, connection)
            except Exception as exc:
                claimed.update(attempts=F("attempts") + 1, last_error=str(exc)[:2000])
                logger.warning("Outbox relay stopped: %s", exc)
                return published
            claimed.update(published_at=timezone.now(), attempts=F("attempts") + 1)
            published += len(batch)
        if len(batch) < batch_size:
            return published


def outbox_purge_published(*, older_than: timedelta) -> int:
    deleted, _ = OutboxMessage.objects.filter(published_at__lt=timezone.now() - older_than).delete()
    return deleted
