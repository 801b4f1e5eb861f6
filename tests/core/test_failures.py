"""The app's base task records a task's final failure, for the dead-letter listing and admin."""

from __future__ import annotations

import pytest

from config.celery_app import app
from config.queues import queue_from_routing_key
from core.failures import FailureRecordingTask
from core.models import TaskFailure


@app.task(name="tests.core.test_failures.exploding_task")
def exploding_task(order_id: int, *, reason: str) -> None:
    raise LookupError(f"order {order_id}: {reason}")


def test_every_task_of_the_app_records_its_failures():
    app.loader.import_default_modules()  # what a worker does at start (autodiscovery)

    assert isinstance(app.tasks["notifications.tasks.webhook_delivery_send_task"], FailureRecordingTask)
    assert isinstance(app.tasks["core.tasks.outbox_relay_task"], FailureRecordingTask)


@pytest.mark.django_db
def test_a_failing_task_leaves_a_record_of_its_error():
    # when a task fails (run in process: only its failure handler is under test)
    result = exploding_task.apply(args=(7,), kwargs={"reason": "gone"}, task_id="task-7")

    # then its failure is recorded with its arguments, error and traceback
    assert result.failed()
    failure = TaskFailure.objects.get()
    assert failure.task_id == "task-7"
    assert failure.task_name == "tests.core.test_failures.exploding_task"
    assert failure.args == [7]
    assert failure.kwargs == {"reason": "gone"}
    assert failure.error == "LookupError: order 7: gone"
    assert "Traceback" in failure.traceback


@pytest.mark.parametrize(
    ("routing_key", "queue"),
    [
        ("webhooks", "webhooks"),
        ("0." * 27 + "1.webhooks", "webhooks"),  # a retry through native delayed delivery
        (None, ""),
    ],
)
def test_the_queue_is_the_routing_key_without_the_delay_prefix(routing_key, queue):
    assert queue_from_routing_key(routing_key) == queue
