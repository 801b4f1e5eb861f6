from __future__ import annotations

import logging
import socket
import uuid

from celery import shared_task
from django.conf import settings
from django.utils import timezone

from core.audit import audit_entry_prune
from core.failures import task_failure_prune
from core.idempotency import idempotency_key_prune
from core.models import WorkerHeartbeat
from core.outbox import outbox_prune, outbox_relay
from core.tokens import api_token_prune

logger = logging.getLogger(__name__)


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
def outbox_prune_task() -> int:
    deleted = outbox_prune()
    logger.info("Deleted %d published outbox row(s) past their retention", deleted)
    return deleted


@shared_task(acks_on_failure_or_timeout=True)
def idempotency_key_prune_task() -> int:
    deleted = idempotency_key_prune()
    logger.info("Deleted %d idempotency key(s) past their retention", deleted)
    return deleted


# This task's name until this release, still sent by the previous release's beat during a
# rolling upgrade (docs/operations.md, "Upgrades and rollback"). Remove in the next release.
@shared_task(name="core.tasks.idempotency_key_cleanup_task", acks_on_failure_or_timeout=True)
def idempotency_key_cleanup_task() -> int:
    return idempotency_key_prune_task()


@shared_task(acks_on_failure_or_timeout=True)
def audit_entry_prune_task() -> int:
    deleted = audit_entry_prune(older_than_days=settings.AUDIT_RETENTION_DAYS)
    logger.info("Deleted %d audit entr(ies) past their retention", deleted)
    return deleted


@shared_task(acks_on_failure_or_timeout=True)
def api_token_prune_task() -> int:
    deleted = api_token_prune()
    logger.info("Deleted %d expired API token(s)", deleted)
    return deleted


@shared_task(acks_on_failure_or_timeout=True)
def task_failure_prune_task() -> int:
    deleted = task_failure_prune()
    logger.info("Deleted %d task failure(s) past their retention", deleted)
    return deleted


@shared_task
def worker_heartbeat_task(heartbeat_id: str) -> None:
    WorkerHeartbeat.objects.filter(pk=uuid.UUID(heartbeat_id), processed_at__isnull=True).update(
        processed_at=timezone.now(), worker=socket.gethostname()
    )
