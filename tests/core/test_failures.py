"""The app's base task records a task's final failure, for the dead-letter listing and admin."""

from __future__ import annotations

import socket

import pytest
from celery.exceptions import Reject
from kombu import Connection

from config.celery_app import app
from config.queues import queue_from_routing_key
from core import failures
from core.failures import FailureRecordingTask
from core.models import TaskFailure


@app.task(name="tests.core.test_failures.exploding_task")
def exploding_task(order_id: int, *, reason: str) -> None:
    raise LookupError(f"order {order_id}: {reason}")


@app.task(name="tests.core.test_failures.patient_task")
def patient_task(order_id: int) -> None:
    pass


def _unreachable_broker() -> Connection:
    with socket.socket() as probe:  # a port nothing listens on: every connection is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return Connection(f"amqp://guest:guest@127.0.0.1:{port}//", connect_timeout=1)


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


def test_a_retry_the_broker_does_not_take_returns_the_message_to_its_queue(monkeypatch):
    monkeypatch.setattr(failures, "UNPUBLISHED_RETRY_PAUSE_SECONDS", 0)
    # given a task running from a message (not eagerly)
    patient_task.push_request(id="task-8", args=[8], kwargs={}, retries=0, is_eager=False, called_directly=False)
    try:
        # when it retries and the broker refuses the retry's message
        with pytest.raises(Reject) as rejected:
            patient_task.retry(countdown=5, connection=_unreachable_broker())
    finally:
        patient_task.pop_request()

    # then the running message is rejected back into its queue, not dead-lettered
    assert rejected.value.args[1] is True  # requeue
