"""One endpoint receives an order's events in sequence: worker processes (NOTIFY_MAX_RETRIES=3,
backoff 1-2 s), RabbitMQ, and a local receiver that fails the order's first event twice."""

from __future__ import annotations

import json

import pytest
from django.db import transaction

from notifications.models import WebhookDelivery
from notifications.services import Notification, notifications_publish, webhook_endpoint_create
from tests.notifications.factories import order_payload
from tests.notifications.receiver import Response, WebhookReceiver
from tests.processes import wait_until

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]


def test_the_second_event_arrives_only_after_the_first_which_failed_twice(
    live_worker, webhook_receiver: WebhookReceiver
):
    # given an endpoint that fails its first two requests, then accepts
    endpoint = webhook_endpoint_create(url=webhook_receiver.url, events=["order.reserved", "order.paid"])
    webhook_receiver.secret = endpoint.secret
    webhook_receiver.respond(Response(500), Response(503), then=Response(200))

    # when an order's reservation and then its payment are published (two transactions)
    with transaction.atomic():
        notifications_publish(notifications=[Notification("order.reserved", order_payload(id=77), None)])
    with transaction.atomic():
        notifications_publish(notifications=[Notification("order.paid", order_payload(id=77, status="paid"), None)])

    # then both are delivered
    wait_until(
        lambda: WebhookDelivery.objects.filter(endpoint=endpoint, status="succeeded").count() == 2,
        timeout=60,
        message="both deliveries",
    )
    # and the receiver saw the first event three times (500, 503, 200) before the second, once
    seen = [(json.loads(r.body)["sequence"], json.loads(r.body)["type"], r.status) for r in webhook_receiver.requests]
    assert seen == [
        (1, "order.reserved", 500),
        (1, "order.reserved", 503),
        (1, "order.reserved", 200),
        (2, "order.paid", 200),
    ]
    assert all(r.signature_valid for r in webhook_receiver.requests)
    # and waiting spent none of the second one's attempts
    second = WebhookDelivery.objects.get(endpoint=endpoint, sequence=2)
    assert second.attempt_count == 1
