from __future__ import annotations

import logging
import socket
import uuid
from datetime import timedelta

from celery import shared_task
from django.utils import timezone

from core.idempotency import idempotency_key_cleanup
from core.models import WorkerHeartbeat
from core.outbox import outbox_purge_published, outbox_relay

logger = logging.getLogger(__name__)

# Published outbox rows are kept this long for inspection, then deleted.
OUTBOX_RETENTION = timedelta(days=1)


# Periodic tasks: a failed run (PostgreSQL down, say) is acknowledged, not dead-lettered. The
# next beat tick does the same work again, so a dead letter of it would be nothing to replay,
# only noise burying the dead letters that matter (dozens per minute of outage otherwise).
@shared_task(acks_on_failure_or_timeout=True)
def outbox_relay_task() -> int:
    published = outbox_relay()
    if published:
        logger.info("Outbox relay published %d message(s)", published)
    return published


@shared_task(acks_on_failure_or_timeout=True)
def idempotency_key_cleanup_task() -> int:
    deleted = idempotency_key_cleanup()
    deleted_outbox = outbox_purge_published(older_than=OUTBOX_RETENTION)
    logger.info("Deleted %d expired idempotency key(s), %d old outbox row(s)", deleted, deleted_outbox)
    return deleted


@shared_task
def worker_heartbeat_task(heartbeat_id: str) -> None:
    WorkerHeartbeat.objects.filter(pk=uuid.UUID(heartbeat_id), processed_at__isnull=True).update(
        processed_at=timezone.now(), worker=socket.gethostname()
    )
