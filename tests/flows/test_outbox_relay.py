"""A second relay is harmless: two relays at once publish every outbox row exactly once."""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from config import queues
from core.models import OutboxMessage
from core.outbox import outbox_relay
from tests.processes import drain_task_ids, purge_queue

logger = logging.getLogger(__name__)

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]

ROWS = 500
# A task that does nothing for an unknown heartbeat id: safe to find in a queue later.
HARMLESS_TASK = "core.tasks.worker_heartbeat_task"


def run_relays_at_once(count: int) -> list[int]:
    barrier = threading.Barrier(count)
    published: list[int] = [0] * count
    errors: list[BaseException] = []

    def relay(index: int) -> None:
        barrier.wait()
        try:
            published[index] = outbox_relay()
        except BaseException as exc:  # reported by the test below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=relay, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return published


def test_two_relays_at_once_publish_each_row_exactly_once(broker_topology, without_shared_workers):
    # given 500 unpublished outbox rows, older than the relay's grace period, and nobody consuming
    purge_queue(queues.ORDERS)
    created_at = timezone.now() - timedelta(minutes=1)
    rows = OutboxMessage.objects.bulk_create(
        OutboxMessage(task_name=HARMLESS_TASK, args=[str(uuid.uuid4())], created_at=created_at) for _ in range(ROWS)
    )

    # when two relays run at the same time
    published = run_relays_at_once(2)
    logger.info("Rows published by each relay: %s", published)

    # then between them they published every row, each relay taking its share
    assert sum(published) == ROWS, published
    assert all(published), f"one relay did all the work, so they did not overlap: {published}"
    assert not OutboxMessage.objects.filter(published_at__isnull=True).exists()
    # and no row was published twice: one attempt each, and one message per row in the queue
    assert Counter(OutboxMessage.objects.values_list("attempts", flat=True)) == {1: ROWS}
    task_ids = Counter(drain_task_ids(queues.ORDERS))
    assert task_ids == Counter({str(row.pk): 1 for row in rows})
