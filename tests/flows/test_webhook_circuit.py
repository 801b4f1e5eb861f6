"""An endpoint's circuit with worker processes (NOTIFY_MAX_RETRIES=3, cool-down 2 s, 5 failures
open it), RabbitMQ and a local receiver that is down for its first five requests."""

from __future__ import annotations

import json

import pytest
from django.db import transaction

from notifications.models import CircuitState, WebhookDelivery, WebhookEndpoint
from notifications.services import Notification, notifications_publish, webhook_endpoint_create
from tests.conftest import FLOW_WORKER_ENV
from tests.notifications.factories import order_payload
from tests.notifications.receiver import Response, WebhookReceiver
from tests.processes import wait_until

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]

COOLDOWN = float(FLOW_WORKER_ENV["WEBHOOK_CIRCUIT_COOLDOWN_SECONDS"])
# Two sends in flight together reach the receiver within this of each other (a retry's back-off
# is at least 1 s here).
IN_FLIGHT_SECONDS = 0.5


def test_an_open_circuit_holds_deliveries_without_dead_lettering_and_a_probe_lets_them_flow_in_sequence(
    live_worker, webhook_receiver: WebhookReceiver
):
    # given an endpoint down for its first five requests (enough to open its circuit), then up
    endpoint = webhook_endpoint_create(url=webhook_receiver.url, events=["order.reserved", "order.paid"])
    webhook_receiver.secret = endpoint.secret
    webhook_receiver.respond(*[Response(503)] * 5, then=Response(200))

    # when two orders' reservation and payment are published (four deliveries, three attempts each)
    for order_id in (501, 502):
        with transaction.atomic():
            notifications_publish(notifications=[Notification("order.reserved", order_payload(id=order_id), None)])
    for order_id in (501, 502):
        with transaction.atomic():
            notifications_publish(
                notifications=[Notification("order.paid", order_payload(id=order_id, status="paid"), None)]
            )

    # then every delivery succeeds: none was dead-lettered while the circuit was open
    wait_until(
        lambda: WebhookDelivery.objects.filter(endpoint=endpoint, status="succeeded").count() == 4,
        timeout=60,
        message="all four deliveries",
    )
    assert not WebhookDelivery.objects.filter(endpoint=endpoint, status="dead_lettered").exists()
    # and the circuit opened after the fifth failure, stayed quiet for its cool-down, then one
    # probe went out, and its success closed it
    requests = webhook_receiver.requests
    assert [r.status for r in requests[:6]] == [503] * 5 + [200]
    # (an attempt admitted while the circuit was still closed may be in flight when the fifth
    # failure opens it: it arrives at once, and its success closes the circuit)
    gap = requests[5].received_at - requests[4].received_at
    assert gap >= COOLDOWN - 0.1 or gap < IN_FLIGHT_SECONDS, gap
    endpoint = WebhookEndpoint.objects.get(pk=endpoint.pk)
    assert endpoint.circuit_state == CircuitState.CLOSED
    assert (endpoint.consecutive_failures, endpoint.circuit_openings, endpoint.failing_since) == (0, 0, None)
    # and each order's payment reached the endpoint only after its reservation
    succeeded = [json.loads(r.body) for r in requests if r.status == 200]
    for order_id in (501, 502):
        assert [e["sequence"] for e in succeeded if e["data"]["id"] == order_id] == [1, 2]
