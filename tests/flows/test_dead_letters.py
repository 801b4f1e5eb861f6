"""Poison messages and the dead-letter queues, for real: a raw undecodable message and a task
that kills its worker each end in webhooks.dlq after a bounded number of deliveries, the
queue keeps flowing, and ``manage.py dlq`` lists, replays and purges what is there."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from kombu import Connection, Exchange, Producer

from config import queues
from config.celery_app import app
from core.dead_letters import DeadLetteredMessage, dead_letter_list
from core.models import TaskFailure
from notifications.models import WebhookDelivery
from notifications.services import Notification, notifications_publish, webhook_endpoint_create
from tests.notifications.factories import order_payload
from tests.processes import wait_until

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]

WAIT = 30.0
FAIL_TASK = "tests.flows.poison_tasks.fail_until_fixed_task"
CRASH_TASK = "tests.flows.poison_tasks.crash_worker_task"


def publish_raw(body: bytes, content_type: str) -> None:
    with Connection(app.conf.broker_url) as conn:
        Producer(conn.default_channel).publish(
            body,
            exchange=Exchange(queues.TASK_EXCHANGE.name, type="topic"),
            routing_key=queues.WEBHOOKS,
            content_type=content_type,
            content_encoding="binary",
            delivery_mode=2,
        )


def send_to_webhooks_queue(task_name: str, *args: str) -> str:
    return app.send_task(task_name, args=list(args), queue=queues.WEBHOOKS).id


def dead_letter(letter_id: str) -> DeadLetteredMessage:
    return wait_until(
        lambda: next((d for d in dead_letter_list(queue=queues.WEBHOOKS) if d.id == letter_id), None),
        timeout=WAIT,
        message=f"dead letter {letter_id}",
    )


def run_dlq(*args: str) -> str:
    out = io.StringIO()
    call_command("dlq", *args, stdout=out)
    return out.getvalue()


def assert_the_notifications_queue_still_flows(webhook_receiver) -> None:
    endpoint = webhook_endpoint_create(url=webhook_receiver.url, events=["order.paid"])
    webhook_receiver.secret = endpoint.secret
    with transaction.atomic():
        notifications_publish(notifications=[Notification("order.paid", order_payload(status="paid"), None)])
    wait_until(
        lambda: WebhookDelivery.objects.filter(status=WebhookDelivery.Status.SUCCEEDED).exists(),
        timeout=WAIT,
        message="a normal notification after the poison",
    )


def test_an_undecodable_message_is_dead_lettered_and_the_queue_keeps_flowing(
    live_worker, dead_letter_queues_empty, webhook_receiver
):
    # given a message no worker can decode, published raw to the notifications queue
    publish_raw(b"\x80\x04 this is not JSON {", content_type="application/json")

    # then it is dead-lettered after one delivery, with what is known about it
    letters = wait_until(lambda: dead_letter_list(queue=queues.WEBHOOKS), timeout=WAIT, message="the dead letter")
    assert len(letters) == 1
    assert letters[0].id.startswith("sha256-")
    assert letters[0].task is None
    assert letters[0].queue == queues.WEBHOOKS
    assert letters[0].reason == "rejected"
    assert "not decodable" in letters[0].error
    assert letters[0].death_count == 1
    # and a normal notification sent after it is still delivered
    assert_the_notifications_queue_still_flows(webhook_receiver)


def test_a_message_that_kills_its_worker_is_dead_lettered_after_the_delivery_limit(
    live_worker, dead_letter_queues_empty, webhook_receiver, tmp_path
):
    # given a task that kills the worker process running it, every time
    runs = tmp_path / "runs"
    task_id = send_to_webhooks_queue(CRASH_TASK, str(runs))

    # then the broker dead-letters it once its delivery limit is exceeded
    letter = dead_letter(task_id)
    assert letter.reason == "delivery_limit"
    assert letter.task == CRASH_TASK
    assert "kept crashing" in letter.error
    deliveries = len(runs.read_text().splitlines())
    # bounded: RabbitMQ 3.10 delivers it once, then again after each of DELIVERY_LIMIT returns
    assert 2 <= deliveries <= queues.DELIVERY_LIMIT + 1, deliveries
    # and a normal notification sent after it is still delivered
    assert_the_notifications_queue_still_flows(webhook_receiver)


def test_dlq_lists_replays_and_purges_dead_letters(live_worker, dead_letter_queues_empty, tmp_path):
    # given two tasks that fail for good, so their messages are dead-lettered
    fixed, ran = tmp_path / "fixed", tmp_path / "ran"
    first = send_to_webhooks_queue(FAIL_TASK, str(fixed), str(ran))
    second = send_to_webhooks_queue(FAIL_TASK, str(fixed), str(tmp_path / "ran-2"))
    dead_letter(first), dead_letter(second)

    # when they are listed as JSON
    listed = json.loads(run_dlq("list", "--queue", "webhooks", "--json"))

    # then each shows its task, arguments, recorded error and death count
    by_id = {letter["id"]: letter for letter in listed}
    assert set(by_id) == {first, second}
    assert by_id[first]["task"] == FAIL_TASK
    assert by_id[first]["args"] == [str(fixed), str(ran)]
    assert by_id[first]["error"] == "RuntimeError: the cause is not fixed yet"
    assert by_id[first]["death_count"] == 1
    assert TaskFailure.objects.filter(task_id=first, queue="webhooks").exists()
    # and the text listing says the same, and listing removed nothing
    text = run_dlq("list")
    assert first in text and "RuntimeError: the cause is not fixed yet" in text and "2 dead letter(s)." in text
    assert {d.id for d in dead_letter_list()} == {first, second}

    # when the cause is fixed and the first one replayed
    fixed.write_text("")
    output = run_dlq("replay", first)

    # then it runs again on its queue, and only it left the dead-letter queue
    assert f"Replayed {first}" in output and "Replayed 1 dead letter(s)." in output
    wait_until(ran.exists, timeout=WAIT, message="the replayed task to run")
    assert [d.id for d in dead_letter_list()] == [second]

    # when a purge is not confirmed
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("builtins.input", lambda prompt: "n")
        output = run_dlq("purge", "--all")

    # then nothing is deleted
    assert "Nothing deleted." in output
    assert [d.id for d in dead_letter_list()] == [second]

    # when an unknown id is replayed
    with pytest.raises(CommandError, match="No dead letter with ID no-such-id"):
        run_dlq("replay", "no-such-id")

    # when the second is purged with --yes
    output = run_dlq("purge", second, "--yes")

    # then it is gone for good
    assert "Deleted 1 dead letter(s)." in output
    assert dead_letter_list() == []


def test_a_replayed_task_that_fails_again_counts_its_second_death(live_worker, dead_letter_queues_empty, tmp_path):
    # given a dead-lettered task whose cause is not fixed
    task_id = send_to_webhooks_queue(FAIL_TASK, str(tmp_path / "fixed"), str(tmp_path / "ran"))
    dead_letter(task_id)

    # when it is replayed anyway
    run_dlq("replay", "--all", "--queue", "webhooks")

    # then it is back in the dead-letter queue, having died twice
    letter = wait_until(
        lambda: next((d for d in dead_letter_list() if d.id == task_id and d.death_count == 2), None),
        timeout=WAIT,
        message="the second death",
    )
    assert letter.error == "RuntimeError: the cause is not fixed yet"
    assert TaskFailure.objects.filter(task_id=task_id).count() == 2
