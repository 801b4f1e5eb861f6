"""Dead letters: what each message says about itself, and ``dead_letter_replay`` against the
test broker (a notification's replay is in tests/notifications/test_recovery.py)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from io import StringIO

import amqp
import pytest
from django.core.management import CommandError, call_command

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
from tests.processes import HEARTBEAT_TASK, dead_letter_to, purge_queue


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
                {"queue": "webhooks", "reason": "rejected", "count": 2, "time": died},
                {"queue": "celery_delayed_0", "reason": "expired", "count": 3, "time": died},
            ],
        },
    )

    # when it is read
    letter = _parse(message, dead_letter_queue="webhooks.dlq")

    # then
    assert letter.id == "abc-123"
    assert letter.task == "notifications.tasks.webhook_delivery_send_task"
    assert (letter.args, letter.kwargs) == ([12], {"force": True})
    assert letter.queue == "webhooks"
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


@pytest.mark.parametrize("queue", [None, "webhooks", "webhooks.dlq"])
def test_queues_are_named_with_or_without_the_dlq_suffix(queue):
    names = dead_letter_queues(queue)

    assert "webhooks.dlq" in names
    assert names == (
        ["orders.dlq", "inventory.dlq", "email.dlq", "webhooks.dlq"] if queue is None else ["webhooks.dlq"]
    )


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
        "x-death": [{"queue": "webhooks", "reason": "rejected", "count": 1}],
    }
    message = dead_message(b"[[12], {}, {}]", content_type="application/json", headers=headers)
    message.delivery_info = {"delivery_tag": 7}
    held = _Held(message, _parse(message, dead_letter_queue="webhooks.dlq"))
    channel = RecordingChannel()

    # when it is replayed
    _replay_message(channel, held)

    # then the same body goes to its queue through the task exchange, with a fresh retry budget,
    # and only then is the dead letter acknowledged
    (_, published, exchange, routing_key, mandatory), ack = channel.calls
    assert (exchange, routing_key, mandatory) == ("tasks", "webhooks", True)
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


def run_dlq(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("dlq", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_dlq_list_reads_at_most_its_limit_the_oldest_first_and_says_how_many_more(dead_letter_queues_empty):
    # given three dead letters in orders.dlq
    letters = [dead_letter_to(queues.ORDERS) for _ in range(3)]

    # when two are listed, as text and as JSON
    text, text_note = run_dlq("list", "--limit", "2")
    as_json, json_note = run_dlq("list", "--limit", "2", "--json")

    # then the two oldest are shown, the third is counted, and listing removed none
    assert letters[0] in text and letters[1] in text and letters[2] not in text
    assert "2 dead letter(s)." in text
    assert "1 more dead letter(s) not shown" in text_note
    assert [letter["id"] for letter in json.loads(as_json)] == letters[:2]
    assert "1 more dead letter(s) not shown" in json_note
    listing = dead_letter_list(limit=2)
    assert (len(listing), listing.total, listing.more) == (2, 3, 1)
    assert [letter.id for letter in dead_letter_list()] == letters


@pytest.mark.django_db
def test_dlq_list_has_a_default_limit_and_refuses_one_out_of_range(dead_letter_queues_empty, monkeypatch):
    monkeypatch.setattr("core.dead_letters.LIST_LIMIT", 2)  # what `dlq list` reads by default
    monkeypatch.setattr("core.management.commands.dlq.LIST_LIMIT", 2)
    letters = [dead_letter_to(queues.INVENTORY) for _ in range(3)]

    text, note = run_dlq("list")

    assert letters[2] not in text and "1 more dead letter(s) not shown" in note
    with pytest.raises(CommandError, match="--limit must be between 1 and"):
        run_dlq("list", "--limit", "0")


@pytest.mark.django_db
def test_dlq_replay_dry_run_says_what_it_would_replay_and_changes_nothing(dead_letter_queues_empty):
    # given a dead letter of a plain task and one of a notification's send (replayed by its service)
    plain = dead_letter_to(queues.ORDERS)
    send = dead_letter_to(queues.EMAIL, task="notifications.tasks.email_notification_send_task", args=[1])

    # when every letter is replayed as a dry run
    out, _ = run_dlq("replay", "--all", "--dry-run")

    # then each says where it would go, and every letter is still there
    assert f"Would replay {plain} ({HEARTBEAT_TASK}) to orders" in out
    assert f"Would replay {send} (notifications.tasks.email_notification_send_task) by notifications." in out
    assert "Would replay 2 dead letter(s)." in out and "Dry run: nothing was replayed or removed." in out
    assert [letter.id for letter in dead_letter_list()] == [plain, send]
    with pytest.raises(CommandError, match="No dead letter with ID nope"):
        run_dlq("replay", "nope", "--dry-run")


@pytest.mark.django_db
def test_a_replay_reads_at_most_the_scan_limit_and_says_the_rest_waits(dead_letter_queues_empty, monkeypatch):
    # given three dead letters, and a replay that may read two
    monkeypatch.setattr("core.dead_letters.SCAN_LIMIT", 2)
    monkeypatch.setattr("core.management.commands.dlq.SCAN_LIMIT", 2)
    letters = [dead_letter_to(queues.ORDERS) for _ in range(3)]

    # when the newest is asked for, then all are
    with pytest.raises(CommandError, match=f"No dead letter with ID {letters[2]} among the oldest 2"):
        run_dlq("replay", letters[2])
    out, note = run_dlq("replay", "--all")

    # then the first found nothing beyond the limit, and the second replayed the oldest two only
    assert "Replayed 2 dead letter(s)." in out
    assert "Only the oldest 2 dead letters were read; 1 more were left for another run." in note
    assert [letter.id for letter in dead_letter_list()] == [letters[2]]
    purge_queue(queues.ORDERS)  # the replayed heartbeats: no worker runs here
