"""The plumbing, for real: a task goes through RabbitMQ to a worker process and into PostgreSQL."""

import pytest
from django.core.management import call_command

from core.models import OutboxMessage, WorkerHeartbeat

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]


def test_a_task_sent_through_rabbitmq_is_executed_by_a_worker(live_worker):
    # given a running worker
    # when a task is sent through the outbox, as every task of the system is
    call_command("ping_worker", timeout=30)

    # then the worker's effect is in PostgreSQL and the outbox row is marked published
    heartbeat = WorkerHeartbeat.objects.get()
    assert heartbeat.processed_at is not None
    assert heartbeat.worker
    assert OutboxMessage.objects.get().published_at is not None
