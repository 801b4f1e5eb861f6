"""Webhooks and e-mails for real: events published through the outbox, RabbitMQ, worker
processes (NOTIFY_MAX_RETRIES=3, backoff base 1 s, cap 2 s: see FLOW_WORKER_ENV), a local
merchant endpoint that checks signatures with its own implementation, and PostgreSQL."""

from __future__ import annotations

import json
from email import message_from_bytes
from email.message import Message

import pytest
from django.core.management import call_command
from django.db import transaction

from config import queues
from config.celery_app import app
from core.dead_letters import dead_letter_list
from core.models import OutboxMessage
from notifications.models import DeliveryAttempt, EmailNotification, WebhookDelivery
from notifications.services import Notification, notifications_publish, webhook_endpoint_create
from tests.conftest import FLOW_WORKER_ENV
from tests.notifications.factories import order_payload
from tests.notifications.receiver import Response, WebhookReceiver
from tests.processes import wait_until

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]

MAX_ATTEMPTS = int(FLOW_WORKER_ENV["NOTIFY_MAX_RETRIES"])
BACKOFF_BASE = float(FLOW_WORKER_ENV["NOTIFY_BACKOFF_BASE_SECONDS"])
BACKOFF_MAX = float(FLOW_WORKER_ENV["NOTIFY_BACKOFF_MAX_SECONDS"])
WAIT = 30.0


def subscribe(receiver: WebhookReceiver, events: list[str] | None = None) -> None:
    endpoint = webhook_endpoint_create(url=receiver.url, events=events or ["order.reserved"])
    receiver.secret = endpoint.secret


def publish(event_type: str = "order.reserved", email: str | None = None) -> str:
    with transaction.atomic():
        event = notifications_publish(notifications=[Notification(event_type, order_payload(), email)])[0]
    return str(event.id)


def delivery_in(*statuses: str) -> WebhookDelivery | None:
    return WebhookDelivery.objects.filter(status__in=statuses).first()


def task_id_of(delivery: WebhookDelivery) -> str:
    message = OutboxMessage.objects.get(task_name="notifications.tasks.webhook_delivery_send_task", args=[delivery.pk])
    return str(message.pk)


def test_an_endpoint_failing_twice_then_answering_gets_three_attempts_with_backoff(live_worker, webhook_receiver):
    # given an endpoint that fails twice, then answers 200
    subscribe(webhook_receiver)
    webhook_receiver.respond(Response(500), Response(503), then=Response(200))

    # when an event is published
    event_id = publish()

    # then the delivery succeeds at the third attempt, each attempt recorded
    delivery = wait_until(lambda: delivery_in(WebhookDelivery.Status.SUCCEEDED), timeout=WAIT, message="the delivery")
    assert delivery.attempt_count == 3
    attempts = list(DeliveryAttempt.objects.filter(delivery=delivery).order_by("number"))
    assert [a.status_code for a in attempts] == [500, 503, 200]
    assert webhook_receiver.statuses() == [500, 503, 200]
    # and every request was the same event, validly signed
    requests = webhook_receiver.requests
    assert all(r.signature_valid for r in requests)
    assert {r.headers["webhook-id"] for r in requests} == {event_id}
    assert {json.loads(r.body)["id"] for r in requests} == {event_id}
    # and the retries waited their backoff: full jitter under base * 2**(n-1), whole seconds
    for number, attempt in enumerate(attempts[:2], start=1):
        ceiling = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (number - 1))
        assert attempt.retry_delay_seconds is not None
        assert 0 <= attempt.retry_delay_seconds <= ceiling
        gap = requests[number].received_at - requests[number - 1].received_at
        assert gap >= attempt.retry_delay_seconds - 0.05, (number, gap, attempt.retry_delay_seconds)
    assert attempts[2].retry_delay_seconds is None


def test_an_endpoint_that_keeps_failing_is_dead_lettered_then_replayed_and_delivered_once(
    live_worker, webhook_receiver, dead_letter_queues_empty
):
    # given an endpoint that always answers 500
    subscribe(webhook_receiver)
    webhook_receiver.respond(then=Response(500))

    # when an event is published
    publish()

    # then after the last attempt the delivery is dead-lettered, and so is its task message
    delivery = wait_until(
        lambda: delivery_in(WebhookDelivery.Status.DEAD_LETTERED), timeout=WAIT, message="dead-lettering"
    )
    assert delivery.attempt_count == MAX_ATTEMPTS
    assert webhook_receiver.statuses() == [500] * MAX_ATTEMPTS
    task_id = task_id_of(delivery)
    letters = wait_until(
        lambda: [d for d in dead_letter_list(queue=queues.WEBHOOKS) if d.id == task_id],
        timeout=WAIT,
        message="the dead letter",
    )
    assert letters[0].task == "notifications.tasks.webhook_delivery_send_task"
    assert letters[0].args == [delivery.pk]
    assert f"gave up after {MAX_ATTEMPTS} attempt(s): HTTP 500" in letters[0].error
    assert letters[0].death_count == 1

    # when the endpoint is fixed and the dead letter replayed (the delivery is recovered: a new send)
    webhook_receiver.respond(then=Response(200))
    call_command("dlq", "replay", task_id)

    # then the delivery succeeds, with exactly one successful request
    wait_until(lambda: delivery_in(WebhookDelivery.Status.SUCCEEDED), timeout=WAIT, message="the replay")
    assert webhook_receiver.statuses() == [500] * MAX_ATTEMPTS + [200]
    assert dead_letter_list(queue=queues.WEBHOOKS) == []

    # when the same message arrives once more (a redelivery, a second replay)
    app.send_task("notifications.tasks.webhook_delivery_send_task", args=[delivery.pk], task_id=task_id)

    # then the worker handles it without sending anything
    wait_until(lambda: live_worker.log().count(f"[{task_id}] succeeded") >= 1, timeout=WAIT, message="the copy")
    assert webhook_receiver.statuses() == [500] * MAX_ATTEMPTS + [200]
    assert WebhookDelivery.objects.get().attempt_count == MAX_ATTEMPTS + 1


def test_a_404_is_dead_lettered_after_one_attempt(live_worker, webhook_receiver, dead_letter_queues_empty):
    # given an endpoint that answers 404
    subscribe(webhook_receiver)
    webhook_receiver.respond(then=Response(404))

    # when an event is published
    publish()

    # then one attempt is made and the message is dead-lettered at once
    delivery = wait_until(
        lambda: delivery_in(WebhookDelivery.Status.DEAD_LETTERED), timeout=WAIT, message="dead-lettering"
    )
    assert delivery.attempt_count == 1
    assert delivery.last_response_code == 404
    task_id = task_id_of(delivery)
    letter = wait_until(
        lambda: [d for d in dead_letter_list(queue=queues.WEBHOOKS) if d.id == task_id],
        timeout=WAIT,
        message="the dead letter",
    )[0]
    assert "permanent failure: HTTP 404" in letter.error
    assert webhook_receiver.statuses() == [404]


def test_a_redirect_is_not_followed(live_worker, webhook_receiver, second_webhook_receiver):
    # given an endpoint that redirects to another server
    subscribe(webhook_receiver)
    webhook_receiver.respond(then=Response(302, headers={"Location": second_webhook_receiver.url}))

    # when an event is published
    publish()

    # then the redirect is a permanent failure and its target never hears of it
    delivery = wait_until(
        lambda: delivery_in(WebhookDelivery.Status.DEAD_LETTERED), timeout=WAIT, message="dead-lettering"
    )
    assert delivery.attempt_count == 1
    assert delivery.last_response_code == 302
    assert "not followed" in delivery.last_error
    assert second_webhook_receiver.requests == []


def read_mail(mail_dir) -> list[Message]:
    return [message_from_bytes(chunk) for path in mail_dir.iterdir() for chunk in [path.read_bytes()]]


def test_the_customer_is_mailed_the_pay_by_deadline_when_the_order_is_reserved(
    live_worker, worker_mail_dir, webhook_receiver
):
    # given an endpoint subscribed to reservations
    subscribe(webhook_receiver)
    recipient = "buyer-reserved@example.com"

    # when a reservation is published with the customer's address
    event_id = publish("order.reserved", email=recipient)

    # then the worker sends the e-mail, text and HTML, with the deadline, and the webhook
    email = wait_until(
        lambda: EmailNotification.objects.filter(status=EmailNotification.Status.SENT).first(),
        timeout=WAIT,
        message="the e-mail",
    )
    assert email.recipient == recipient
    assert email.attempt_count == 1
    messages = [m for m in read_mail(worker_mail_dir) if m["To"] == recipient]
    assert len(messages) == 1
    message = messages[0]
    assert message["Subject"] == "Order #42 is reserved: please pay by 2 January 2030, 03:04 UTC"
    assert event_id in message["Message-ID"]
    parts = {
        part.get_content_type(): bytes(part.get_payload(decode=True)).decode()
        for part in message.walk()
        if not part.is_multipart()
    }
    assert "by 2 January 2030, 03:04 UTC" in parts["text/plain"]
    assert "<td>Mug (MUG-1)</td>" in parts["text/html"]
    wait_until(lambda: delivery_in(WebhookDelivery.Status.SUCCEEDED), timeout=WAIT, message="the webhook")
