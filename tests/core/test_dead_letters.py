"""Dead letters: what each message says about itself, and ``dead_letter_replay`` against the
test broker (a notification's replay is in tests/notifications/test_recovery.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import amqp
import pytest

from config import queues
from core.dead_letters import (
    DeadLetterError,
    _Held,
    _parse,
    _replay_message,
    dead_letter_list,
    dead_letter_queues,
    dead_letter_replay,
)
from tests.processes import HEARTBEAT_TASK, dead_letter_to


def dead_message(body: bytes, *, content_type: str, headers: dict) -> amqp.Message:
    return amqp.Message(body, content_type=content_type, content_encoding="utf-8", application_headers=headers)


def test_a_task_message_shows_its_id_task_arguments_and_deaths_in_work_queues_only():
    # given a task message that was retried through a delay queue, then rejected twice
    died = datetime(2030, 1, 2, 3, 4, 5)
    message = dead_message(
        json.dumps([[12], {"force": True}, {}]).encode(),
        content_type="application/json",
        headers={
            "id": "abc-123",
            "task": "notifications.tasks.webhook_delivery_send_task",
            "x-death": [
                {"queue": "notifications", "reason": "rejected", "count": 2, "time": died},
                {"queue": "celery_delayed_0", "reason": "expired", "count": 3, "time": died},
            ],
        },
    )

    # when it is read
    letter = _parse(message, dead_letter_queue="notifications.dlq")

    # then
    assert letter.id == "abc-123"
    assert letter.task == "notifications.tasks.webhook_delivery_send_task"
    assert (letter.args, letter.kwargs) == ([12], {"force": True})
    assert letter.queue == "notifications"
    assert letter.reason == "rejected"
    assert letter.death_count == 2
    assert letter.died_at == died.replace(tzinfo=UTC)  # AMQP timestamps are UTC


def test_a_message_without_a_task_is_named_by_a_digest_of_its_body():
    message = dead_message(
        b"garbage",
        content_type="application/x-junk",
        headers={"x-death": [{"queue": "orders", "reason": "rejected", "count": 1}]},
    )

    letter = _parse(message, dead_letter_queue="orders.dlq")

    assert letter.id.startswith("sha256-") and len(letter.id) == len("sha256-") + 24
    assert letter.task is None
    assert "not decodable (content type 'application/x-junk')" in letter.error
    assert _parse(message, dead_letter_queue="orders.dlq").id == letter.id


def test_a_message_past_its_delivery_limit_says_it_kept_crashing():
    message = dead_message(
        b"[[], {}, {}]",
        content_type="application/json",
        headers={
            "id": "x",
            "task": "t",
            "x-death": [{"queue": "inventory", "reason": "delivery_limit", "count": 1}],
        },
    )

    assert "kept crashing" in _parse(message, dead_letter_queue="inventory.dlq").error


@pytest.mark.parametrize("queue", [None, "notifications", "notifications.dlq"])
def test_queues_are_named_with_or_without_the_dlq_suffix(queue):
    names = dead_letter_queues(queue)

    assert "notifications.dlq" in names
    assert names == (["orders.dlq", "inventory.dlq", "notifications.dlq"] if queue is None else ["notifications.dlq"])


def test_an_unknown_queue_is_refused():
    with pytest.raises(DeadLetterError, match="Unknown queue 'payments'"):
        dead_letter_queues("payments")


class RecordingChannel:
    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def basic_publish(self, message, *, exchange, routing_key, mandatory):
        self.calls.append(("publish", message, exchange, routing_key, mandatory))

    def basic_ack(self, delivery_tag):
        self.calls.append(("ack", delivery_tag))


def test_a_replay_publishes_a_fresh_run_to_the_original_queue_then_acknowledges_the_dead_letter():
    # given a dead letter that had used up its retries
    headers = {
        "id": "abc-123",
        "task": "notifications.tasks.webhook_delivery_send_task",
        "retries": 2,
        "eta": "2030-01-02T03:04:05+00:00",
        "x-delivery-count": 1,
        "x-death": [{"queue": "notifications", "reason": "rejected", "count": 1}],
    }
    message = dead_message(b"[[12], {}, {}]", content_type="application/json", headers=headers)
    message.delivery_info = {"delivery_tag": 7}
    held = _Held(message, _parse(message, dead_letter_queue="notifications.dlq"))
    channel = RecordingChannel()

    # when it is replayed
    _replay_message(channel, held)

    # then the same body goes to its queue through the task exchange, with a fresh retry budget,
    # and only then is the dead letter acknowledged
    (_, published, exchange, routing_key, mandatory), ack = channel.calls
    assert (exchange, routing_key, mandatory) == ("tasks", "notifications", True)
    assert published.body == b"[[12], {}, {}]"
    assert published.properties["content_type"] == "application/json"
    assert published.properties["delivery_mode"] == 2
    sent_headers = published.properties["application_headers"]
    assert (sent_headers["id"], sent_headers["retries"], sent_headers["eta"]) == ("abc-123", 0, None)
    assert "x-delivery-count" not in sent_headers
    assert sent_headers["x-death"] == headers["x-death"]  # so a second death counts as the second
    assert ack == ("ack", 7)


@pytest.mark.django_db
def test_dead_letter_replay_sends_a_letter_back_to_its_queue_and_reports_the_unknown(dead_letter_queues_empty):
    # given two dead letters of a task in orders.dlq
    replayed, kept = dead_letter_to(queues.ORDERS), dead_letter_to(queues.ORDERS)
    done: list[tuple[str, str]] = []

    # when one is replayed, with an id that is not there
    result = dead_letter_replay(ids=[replayed, "gone-1"], on_done=lambda letter, note: done.append((letter.id, note)))

    # then it went back to its queue, the other stays, and the unknown id is reported
    assert done == [(replayed, "to orders")]
    assert [letter.task for letter in result.done] == [HEARTBEAT_TASK]
    assert result.not_found == ["gone-1"]
    assert [letter.id for letter in dead_letter_list()] == [kept]
