"""The transactional outbox: tasks are recorded with the business change, published after.

``outbox_enqueue`` (``outbox_enqueue_many`` for several) is the one way the system enqueues a
task; a use case that writes its change in one statement embeds the row's ``INSERT`` in it
instead (``outbox_row_insert``, then ``outbox_row_written``). Either way the row is written in
the transaction that makes the change the task follows up on: it commits (or rolls back) with
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
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django_guid import get_guid
from kombu import Connection, Producer
from kombu.connection import ConnectionPool

from config.celery_app import app
from core.models import OutboxMessage
from core.retention import rows_prune
from core.tracing import outbox_publish_span, traceparent_current

logger = logging.getLogger(__name__)

# How long after a failed publish the web process stops trying to publish after commit and
# leaves the work to the relay, so a broker outage does not add a timeout to every request.
BROKER_BACKOFF_SECONDS = 5.0
# Rows younger than this are left to the after-commit publisher, which is normally faster.
RELAY_GRACE = timedelta(seconds=2)
# Rows per relay transaction: small enough to hold the row locks briefly, large enough to
# drain a backlog of thousands within a few beat intervals.
RELAY_BATCH_SIZE = 200
# How long a batch of publishes may wait for the broker's confirms, and any other socket read or
# write on a publishing connection may take. A request waits for its after-commit publish, so it
# gives up sooner and leaves the rows to the relay. Without a bound, a broker under a memory or
# disk alarm (it stops reading from publishing connections without closing them) would hold
# every request until the alarm clears.
CONFIRM_TIMEOUT_SECONDS = 10.0
AFTER_COMMIT_TIMEOUT_SECONDS = 2.0

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
        raise RuntimeError("outbox_enqueue_many must be called inside a transaction")
    if not tasks:
        return []
    request_id = get_guid() or ""
    traceparent = traceparent_current()
    messages = OutboxMessage.objects.bulk_create(
        OutboxMessage(
            task_name=task.task_name,
            args=task.args,
            kwargs=task.kwargs,
            request_id=request_id,
            traceparent=traceparent,
        )
        for task in tasks
    )
    transaction.on_commit(functools.partial(_publish_after_commit, messages))
    return [message.id for message in messages]


def outbox_enqueue(*, task_name: str, args: list[Any], kwargs: dict[str, Any] | None = None) -> uuid.UUID:
    """Record one task to run after the current transaction commits. Call inside that transaction."""
    (message_id,) = outbox_enqueue_many([OutboxTask(task_name, args, kwargs or {})])
    return message_id


# One outbox row inserted by a caller's own statement, as one of its data-modifying CTEs, for a
# use case that writes its change and the change's follow-up in a single statement (order
# placement). ``{args}`` is the caller's SQL expression for the task's arguments (its new row's
# id, say) and ``{source}`` the CTE it selects from: no row there, no outbox row.
_ROW_INSERT_SQL = f"""
    INSERT INTO {OutboxMessage._meta.db_table}
        (id, task_name, args, kwargs, request_id, traceparent, created_at, attempts, last_error)
    SELECT %(outbox_id)s, %(outbox_task_name)s, {{args}}, jsonb_build_object(), %(outbox_request_id)s,
        %(outbox_traceparent)s, %(outbox_created_at)s, 0, ''
    FROM {{source}}
"""  # noqa: S608 - the table name is the model's; the caller's expressions are its own constants


@dataclass(frozen=True)
class OutboxRowInsert:
    """An outbox row's ``INSERT``, to embed in a caller's statement (:func:`outbox_row_insert`)."""

    sql: str
    params: dict[str, Any]
    message: OutboxMessage  # the row as written, but for its args: ``outbox_row_written`` fills them in


def outbox_row_insert_sql(*, args_sql: str, source: str) -> str:
    """The SQL of :func:`outbox_row_insert`, for a statement defined once (its values are the
    named parameters ``outbox_row_insert`` gives)."""
    return _ROW_INSERT_SQL.format(args=args_sql, source=source)


def outbox_row_insert(*, task_name: str, args_sql: str, source: str) -> OutboxRowInsert:
    """The ``INSERT ... SELECT ... FROM source`` of one outbox row, for a statement of the caller's.

    The caller embeds ``sql`` (a data-modifying CTE) and ``params`` (named) in one statement with
    the change the task follows up on, so both commit or neither does; once that statement has
    run, it calls :func:`outbox_row_written` in the same transaction (or at once, if the statement
    was its own transaction).
    """
    message = OutboxMessage(
        id=uuid.uuid4(),
        task_name=task_name,
        request_id=get_guid() or "",
        traceparent=traceparent_current(),
        created_at=timezone.now(),
    )
    params = {
        "outbox_id": message.id,
        "outbox_task_name": message.task_name,
        "outbox_request_id": message.request_id,
        "outbox_traceparent": message.traceparent,
        "outbox_created_at": message.created_at,
    }
    return OutboxRowInsert(outbox_row_insert_sql(args_sql=args_sql, source=source), params, message)


@dataclass(frozen=True)
class SharedSend:
    """For a message of which one on its way does the work of many (orders/reservation_requests.py).

    After commit, ``claim()`` says whether this row's message must go (True: no other is on its
    way, and this one now is); if not, the row is marked published without being sent. A claimed
    message that could not be sent is left to the relay, and ``release()`` undoes the claim, so
    the next row's message is sent (or left to the relay) in its turn.
    """

    claim: Callable[[], bool]
    release: Callable[[], None]


def outbox_row_written(row: OutboxRowInsert, *, args: list[Any], shared: SharedSend | None = None) -> None:
    """Publish the row a caller's statement wrote (``args``: what its ``args_sql`` gave) after commit.

    Call right after the statement: inside its transaction, or with none open, when the statement
    was its own transaction and has committed (the publish then happens at once).
    """
    row.message.args = args
    transaction.on_commit(functools.partial(_publish_after_commit, [row.message], shared))


class PublishNotConfirmed(Exception):
    """The broker refused (nack) or did not confirm a published message in time."""


class _ConfirmChannel:
    """A channel in confirm mode kept open on one broker connection and reused for every batch.

    Opening a channel and switching it to confirm mode cost two broker round trips, and closing
    it a third; per request that was most of the publish. The channel lives as long as its
    connection (a pooled one, for the after-commit publish). Delivery tags keep counting up on a
    confirm-mode channel, so each batch waits for the tags it published. A channel whose batch
    failed is closed and dropped, so a late confirm can never be taken for a new message's.
    """

    def __init__(self, connection: Connection) -> None:
        self.transport_connection = connection.connection
        channel: Any = connection.channel()  # py-amqp's Channel
        channel.confirm_select()
        # The transport makes every publish wait for its own confirm; publish without waiting here.
        channel.basic_publish = channel._basic_publish
        channel.events["basic_ack"].add(self._on_ack)
        channel.events["basic_nack"].add(self._on_nack)
        self.channel = channel
        self.producer = Producer(channel)
        self.last_tag = 0  # tags of a confirm-mode channel count from 1
        self.unconfirmed: set[int] = set()
        self.refused: list[int] = []

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        if multiple:
            self.unconfirmed.difference_update([tag for tag in self.unconfirmed if tag <= delivery_tag])
        else:
            self.unconfirmed.discard(delivery_tag)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self.refused.append(delivery_tag)
        self._on_ack(delivery_tag, multiple)

    def usable_on(self, connection: Connection) -> bool:
        return connection.connection is self.transport_connection and bool(self.channel.is_open)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.channel.close()


def _confirm_channel(connection: Connection) -> _ConfirmChannel:
    channel: _ConfirmChannel | None = getattr(connection, "_outbox_confirm_channel", None)
    if channel is None or not channel.usable_on(connection):
        if channel is not None:
            channel.close()
        channel = _ConfirmChannel(connection)
        connection._outbox_confirm_channel = channel  # type: ignore[attr-defined]
    return channel


def _publishing_connection(timeout: float) -> Connection:
    """A broker connection whose every socket read and write gives up after ``timeout``."""
    transport_options = {"read_timeout": timeout, "write_timeout": timeout}
    return app.connection_for_write(transport_options=transport_options)


@functools.cache
def _after_commit_pool() -> ConnectionPool:
    # One pool per process, made on first use: after gunicorn or Celery has forked.
    return _publishing_connection(AFTER_COMMIT_TIMEOUT_SECONDS).Pool(app.conf.broker_pool_limit)


def _publish_confirmed(messages: Sequence[OutboxMessage], connection: Connection, *, timeout: float) -> None:
    """Publish every message, then wait until the broker has confirmed them all.

    Publisher confirms one message at a time cost a broker round trip (and, for quorum queues,
    a log flush) each. Here the messages are published back to back on a channel in confirm
    mode and the confirms, which RabbitMQ may group (``multiple``), are collected afterwards:
    one wait for the batch. Raises if any message is nacked or not confirmed within ``timeout``;
    the caller then leaves the whole batch to be published again (consumers are idempotent) and
    must not use ``connection`` again: a timed-out write may have left half a frame on it.
    """
    confirm = _confirm_channel(connection)
    confirm.refused.clear()
    try:
        for message in messages:
            task_id = str(message.id)
            # The trace of the span that wrote the row, not of whoever publishes it (core/tracing.py).
            with outbox_publish_span(
                task_name=message.task_name, task_id=task_id, traceparent=message.traceparent
            ) as trace_headers:
                app.send_task(
                    message.task_name,
                    args=message.args,
                    kwargs=message.kwargs,
                    task_id=task_id,
                    headers={"request_id": message.request_id, **trace_headers},
                    producer=confirm.producer,
                    retry=False,
                )
            confirm.last_tag += 1
            confirm.unconfirmed.add(confirm.last_tag)
        deadline = time.monotonic() + timeout
        while confirm.unconfirmed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise PublishNotConfirmed(f"{len(confirm.unconfirmed)} message(s) not confirmed in time")
            connection.drain_events(timeout=remaining)
        if confirm.refused:
            raise PublishNotConfirmed(f"{len(confirm.refused)} message(s) refused by the broker")
    except BaseException:
        with contextlib.suppress(AttributeError):
            del connection._outbox_confirm_channel  # type: ignore[attr-defined]
        # Without a handshake: a broker that stopped reading would never answer a channel close.
        connection.collect()
        raise


_MARK_PUBLISHED_SQL = f"""
    UPDATE {OutboxMessage._meta.db_table} SET published_at = %s
    WHERE id = ANY(%s::uuid[]) AND published_at IS NULL
"""  # noqa: S608 - the table name is the model's, the ids are a parameter


def _publish_after_commit(messages: list[OutboxMessage], shared: SharedSend | None = None) -> None:
    global _broker_unavailable_until
    if time.monotonic() < _broker_unavailable_until:
        return
    if shared is not None and not shared.claim():
        _mark_published(messages)
        return
    try:
        with _after_commit_pool().acquire(block=True) as connection:
            # One connection attempt per broker node: kombu would otherwise retry (re)connecting
            # for up to ~6 s with a refused connection (celery/celery#6046), and the request would
            # wait for it. With a cluster's failover URL a node that is down is skipped at once
            # (kombu sleeps only after trying every node) and the next one is tried.
            connection.ensure_connection(max_retries=max(len(connection.alt), 1) - 1)
            _publish_confirmed(messages, connection, timeout=AFTER_COMMIT_TIMEOUT_SECONDS)
    except Exception as exc:  # the relay publishes them later; the request must not fail
        _broker_unavailable_until = time.monotonic() + BROKER_BACKOFF_SECONDS
        if shared is not None:
            shared.release()
        logger.warning("Publish of %d outbox message(s) deferred to the relay: %s", len(messages), exc)
        return
    _broker_unavailable_until = 0.0
    _mark_published(messages)


def _mark_published(messages: list[OutboxMessage]) -> None:
    # Once per request: the statement is written out, as building it with the ORM cost about as
    # much Python as the publish itself. The relay only takes rows still unpublished.
    with transaction.get_connection().cursor() as cursor:
        cursor.execute(_MARK_PUBLISHED_SQL, [timezone.now(), [m.id for m in messages]])


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
                with _publishing_connection(CONFIRM_TIMEOUT_SECONDS) as connection:
                    connection.ensure_connection(max_retries=3)
                    _publish_confirmed(batch, connection, timeout=CONFIRM_TIMEOUT_SECONDS)
            except Exception as exc:
                claimed.update(attempts=F("attempts") + 1, last_error=str(exc)[:2000])
                logger.warning("Outbox relay stopped: %s", exc)
                return published
            claimed.update(published_at=timezone.now(), attempts=F("attempts") + 1)
            published += len(batch)
        if len(batch) < batch_size:
            return published


def outbox_prune() -> int:
    """Delete rows published more than ``OUTBOX_RETENTION_HOURS`` ago (kept until then for the
    admin's outbox page), in batches; returns how many."""
    cutoff = timezone.now() - timedelta(hours=settings.OUTBOX_RETENTION_HOURS)
    return rows_prune(OutboxMessage.objects.filter(published_at__lt=cutoff), age_field="published_at")
