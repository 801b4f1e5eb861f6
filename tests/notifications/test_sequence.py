"""Per-order sequence numbers on events, and in-sequence delivery to each endpoint (in process;
tests/flows/test_webhook_order.py does it with worker processes and a real receiver)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from core.models import OutboxMessage
from notifications.models import NotificationEvent, WebhookDelivery
from notifications.services import Notification, Outcome, notifications_publish, webhook_delivery_send
from notifications.services.publishing import WEBHOOK_DELIVERY_TASK, notifications_fan_out
from tests.notifications.factories import WebhookEndpointFactory, order_payload
from tests.notifications.receiver import Response

pytestmark = pytest.mark.django_db


def publish(*event_types: str, order_id: int = 42) -> list[NotificationEvent]:
    with transaction.atomic():
        return notifications_publish(
            notifications=[Notification(t, order_payload(id=order_id), None) for t in event_types]
        )


def test_each_orders_events_are_numbered_from_1_in_the_transaction_that_records_them():
    # given two events of order 42 already recorded, and one of order 7
    publish("order.pending", "order.reserved", order_id=42)
    publish("order.pending", order_id=7)

    # when more are recorded, in one transaction
    events = publish("order.paid", "order.shipped", order_id=42)

    # then they continue their order's numbering, and each order counts on its own
    assert [e.sequence for e in events] == [3, 4]
    numbered = NotificationEvent.objects.order_by("order_id", "sequence").values_list("order_id", "sequence")
    assert list(numbered) == [(7, 1), (42, 1), (42, 2), (42, 3), (42, 4)]


def test_an_event_without_an_order_has_no_sequence():
    with transaction.atomic():
        [event] = notifications_publish(notifications=[Notification("order.paid", {"status": "paid"}, None)])

    assert (event.order_id, event.sequence) == (None, None)


def deliveries_to(endpoint_url: str, *event_types: str) -> list[WebhookDelivery]:
    endpoint = WebhookEndpointFactory.create(url=endpoint_url)
    events = publish(*event_types)
    notifications_fan_out(events=[[str(e.id), e.event_type, None] for e in events])
    deliveries = list(WebhookDelivery.objects.filter(endpoint=endpoint).order_by("sequence"))
    return deliveries


def test_a_later_event_waits_while_an_earlier_one_is_retried_and_spends_no_attempt(webhook_receiver):
    # given an order's two events for one endpoint, the first failed with a retry scheduled
    first, second = deliveries_to(webhook_receiver.url, "order.reserved", "order.paid")
    assert (first.order_id, first.sequence, second.sequence) == (42, 1, 2)
    webhook_receiver.respond(Response(500))
    assert webhook_delivery_send(delivery_id=first.pk, attempt=1).outcome is Outcome.RETRY

    # when the second is due
    result = webhook_delivery_send(delivery_id=second.pk, attempt=1)

    # then it waits, unsent, its attempts untouched, and says what for
    assert result.outcome is Outcome.WAIT
    assert result.retry_in is not None and result.retry_in >= 1
    second.refresh_from_db()
    assert second.attempt_count == 0 and second.attempts.count() == 0
    assert second.status == WebhookDelivery.Status.PENDING
    assert "waiting for sequence 1" in second.last_error
    assert len(webhook_receiver.requests) == 1


def test_a_later_event_is_sent_once_the_earlier_one_arrived(webhook_receiver):
    first, second = deliveries_to(webhook_receiver.url, "order.reserved", "order.paid")
    webhook_delivery_send(delivery_id=first.pk, attempt=1)

    result = webhook_delivery_send(delivery_id=second.pk, attempt=1)

    assert result.outcome is Outcome.SENT
    assert [json.loads(r.body)["sequence"] for r in webhook_receiver.requests] == [1, 2]


def wake_ups(delivery: WebhookDelivery) -> int:
    return OutboxMessage.objects.filter(task_name=WEBHOOK_DELIVERY_TASK, args=[delivery.pk]).count()


def test_a_later_event_that_waited_is_woken_when_the_earlier_one_arrives(webhook_receiver):
    # given an order's second event waiting for its first, which failed once
    first, second = deliveries_to(webhook_receiver.url, "order.reserved", "order.paid")
    webhook_receiver.respond(Response(500), then=Response(200))
    webhook_delivery_send(delivery_id=first.pk, attempt=1)
    assert webhook_delivery_send(delivery_id=second.pk, attempt=1).outcome is Outcome.WAIT
    fanned_out = wake_ups(second)

    # when the first arrives
    assert webhook_delivery_send(delivery_id=first.pk, attempt=2).outcome is Outcome.SENT

    # then the second's send goes out with that commit, not at its next look
    assert wake_ups(second) == fanned_out + 1
    # and once it is sent, its own message finds it done
    assert webhook_delivery_send(delivery_id=second.pk, attempt=1).outcome is Outcome.SENT
    assert webhook_delivery_send(delivery_id=second.pk, attempt=1).outcome is Outcome.SKIPPED


def test_a_later_event_that_did_not_wait_is_not_woken(webhook_receiver):
    first, second = deliveries_to(webhook_receiver.url, "order.reserved", "order.paid")
    fanned_out = wake_ups(second)

    assert webhook_delivery_send(delivery_id=first.pk, attempt=1).outcome is Outcome.SENT

    assert wake_ups(second) == fanned_out


@pytest.mark.parametrize(
    "earlier",
    [
        {"status": WebhookDelivery.Status.DEAD_LETTERED},
        {"status": WebhookDelivery.Status.FAILED, "next_attempt_at": None},  # its endpoint was deactivated
    ],
    ids=["dead-lettered", "failed-nothing-scheduled"],
)
def test_an_earlier_event_that_may_never_arrive_holds_nothing_back(webhook_receiver, earlier):
    first, second = deliveries_to(webhook_receiver.url, "order.reserved", "order.paid")
    WebhookDelivery.objects.filter(pk=first.pk).update(updated_at=timezone.now(), **earlier)

    result = webhook_delivery_send(delivery_id=second.pk, attempt=1)

    assert result.outcome is Outcome.SENT


def test_another_endpoints_or_orders_delivery_holds_nothing_back(webhook_receiver, second_webhook_receiver):
    # given two endpoints, order 42's two events to each, and order 7's first event
    mine = WebhookEndpointFactory.create(url=webhook_receiver.url)
    elsewhere = WebhookEndpointFactory.create(url=second_webhook_receiver.url)
    events = publish("order.reserved", order_id=7) + publish("order.reserved", "order.paid", order_id=42)
    notifications_fan_out(events=[[str(e.id), e.event_type, None] for e in events])
    # and order 42's first event already delivered to this endpoint, still pending to the other
    WebhookDelivery.objects.filter(endpoint=mine, order_id=42, sequence=1).update(
        status=WebhookDelivery.Status.SUCCEEDED
    )
    second = WebhookDelivery.objects.get(endpoint=mine, order_id=42, sequence=2)

    # when order 42's second event is due to this endpoint
    result = webhook_delivery_send(delivery_id=second.pk, attempt=1)

    # then it goes: neither the other endpoint's nor order 7's pending deliveries hold it back
    assert WebhookDelivery.objects.get(endpoint=elsewhere, order_id=42, sequence=1).status == "pending"
    assert WebhookDelivery.objects.get(endpoint=mine, order_id=7).status == "pending"
    assert result.outcome is Outcome.SENT


def test_an_earlier_event_not_yet_fanned_out_holds_a_later_one_back_for_a_while(webhook_receiver):
    # given an order's two events, the second fanned out to the endpoint before the first was
    # (their fan-outs ran side by side on two worker processes)
    endpoint = WebhookEndpointFactory.create(url=webhook_receiver.url)
    first, second = publish("order.reserved", "order.paid")
    notifications_fan_out(events=[[str(second.id), second.event_type, None]])
    later = WebhookDelivery.objects.get(endpoint=endpoint, event=second)

    # when the second is due, it waits for the first
    result = webhook_delivery_send(delivery_id=later.pk, attempt=1)
    assert result.outcome is Outcome.WAIT
    assert "not fanned out yet" in result.detail
    assert webhook_receiver.requests == []

    # then an earlier event long past its fan-out was not for this endpoint: nothing waits for it
    NotificationEvent.objects.filter(pk=first.pk).update(created_at=timezone.now() - timedelta(minutes=6))
    assert webhook_delivery_send(delivery_id=later.pk, attempt=1).outcome is Outcome.SENT
