"""Send a task through RabbitMQ and wait until a worker has written its effect to PostgreSQL."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from core.models import WorkerHeartbeat
from core.outbox import outbox_enqueue


class Command(BaseCommand):
    help = "Check the pipeline end to end: a task goes through RabbitMQ to a worker and back."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (default 30)")

    def handle(self, *args: Any, timeout: float, **options: Any) -> None:
        with transaction.atomic(durable=True):
            heartbeat = WorkerHeartbeat.objects.create()
            outbox_enqueue(task_name="core.tasks.worker_heartbeat_task", args=[str(heartbeat.pk)])
        self.stdout.write(f"Sent heartbeat {heartbeat.pk}; waiting up to {timeout:.0f}s for a worker...")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            heartbeat.refresh_from_db()
            if heartbeat.processed_at is not None:
                elapsed = (heartbeat.processed_at - heartbeat.requested_at).total_seconds()
                self.stdout.write(self.style.SUCCESS(f"Worker {heartbeat.worker} processed it after {elapsed:.2f}s."))
                return
            time.sleep(0.2)
        raise CommandError(f"No worker processed heartbeat {heartbeat.pk} within {timeout:.0f}s.")
