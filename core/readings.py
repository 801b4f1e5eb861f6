"""Operational readings: queue depths and the outbox backlog, for the admin dashboard and the
Prometheus gauges (core/gauges.py).

Each reading is cheap on its own (a passive queue declare per queue, index-backed queries), and
is cached for ``CACHE_SECONDS`` so that a dashboard refreshed by many staff, or several
Prometheus servers scraping every web process, cost the services one reading per few seconds.
A reading that cannot be taken (RabbitMQ down) is reported as unavailable, never raised: the
dashboard and ``/metrics`` must keep working during the outages they are meant to show.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, TypeVar

import amqp
from django.core.cache import cache
from django.db.models import Min
from django.utils import timezone
from kombu import Connection

from config import queues
from config.celery_app import app
from core.models import OutboxMessage

logger = logging.getLogger(__name__)

CACHE_SECONDS = 5
BROKER_TIMEOUT_SECONDS = 2.0

T = TypeVar("T")


def reading_cache_key(key: str) -> str:
    return f"operations:{key}"


def cached_reading(
    key: str,
    read: Callable[[], T],
    *,
    to_json: Callable[[T], Any],
    from_json: Callable[[Any], T],
    seconds: int = CACHE_SECONDS,
) -> T:
    """``read()``, shared through the cache for ``seconds``; read directly when Redis is down.

    The cache keeps JSON only (never pickle, see ``CACHES``): ``to_json`` turns the reading into
    JSON types and ``from_json`` turns them back into an equal reading.
    """
    cache_key = reading_cache_key(key)
    try:
        cached = cache.get(cache_key)
    except Exception:  # Redis is only an accelerator
        logger.warning("Cache unavailable for operations reading %s", key, exc_info=True)
        return read()
    if cached is not None:
        return from_json(cached)
    value = read()
    try:
        cache.set(cache_key, to_json(value), seconds)
    except Exception:
        logger.warning("Cache unavailable for operations reading %s", key, exc_info=True)
    return value


def datetime_to_json(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def datetime_from_json(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


@dataclass(frozen=True)
class QueueDepth:
    name: str
    messages: int | None  # None: RabbitMQ could not be asked
    consumers: int | None
    dead_letter: bool


def _passive_declare(connection: Connection, name: str) -> tuple[int, int]:
    # A passive declare reads the counts without creating or changing the queue. A queue that
    # does not exist yet (no worker has declared it) holds nothing; the broker closes the
    # channel on that answer, hence a channel per queue.
    channel: Any = connection.channel()  # a py-amqp channel
    try:
        _, messages, consumers = channel.queue_declare(queue=name, passive=True)
    except amqp.exceptions.NotFound:
        return 0, 0
    channel.close()
    return messages, consumers


def _read_queue_depths() -> list[QueueDepth]:
    names = [(name, False) for name in queues.WORK_QUEUE_NAMES]
    names += [(queues.dead_letter_queue_name(name), True) for name in queues.WORK_QUEUE_NAMES]
    try:
        with app.connection_for_read() as connection:
            connection.ensure_connection(max_retries=1, timeout=int(BROKER_TIMEOUT_SECONDS))
            depths = []
            for name, dead_letter in names:
                messages, consumers = _passive_declare(connection, name)
                depths.append(QueueDepth(name, messages, consumers, dead_letter))
            return depths
    except Exception:
        logger.warning("Could not read queue depths from RabbitMQ", exc_info=True)
        return [QueueDepth(name, None, None, dead_letter) for name, dead_letter in names]


def queue_depths() -> list[QueueDepth]:
    """Ready messages and consumers of every work queue and dead-letter queue, from RabbitMQ."""
    return cached_reading(
        "queue_depths",
        _read_queue_depths,
        to_json=lambda depths: [asdict(depth) for depth in depths],
        from_json=lambda rows: [QueueDepth(**row) for row in rows],
    )


@dataclass(frozen=True)
class OutboxBacklog:
    unpublished: int
    oldest_created_at: datetime | None

    @property
    def oldest_age_seconds(self) -> float:
        if self.oldest_created_at is None:
            return 0.0
        return max(0.0, (timezone.now() - self.oldest_created_at).total_seconds())


def _read_outbox_backlog() -> OutboxBacklog:
    # Both use the partial index on unpublished rows, which stays small when the relay keeps up.
    unpublished = OutboxMessage.objects.filter(published_at__isnull=True)
    oldest = unpublished.aggregate(oldest=Min("created_at"))["oldest"]
    return OutboxBacklog(unpublished=unpublished.count(), oldest_created_at=oldest)


def outbox_backlog() -> OutboxBacklog:
    """Outbox rows not yet published, and when the oldest of them was written."""
    return cached_reading(
        "outbox_backlog",
        _read_outbox_backlog,
        to_json=lambda backlog: [backlog.unpublished, datetime_to_json(backlog.oldest_created_at)],
        from_json=lambda row: OutboxBacklog(row[0], datetime_from_json(row[1])),
    )
