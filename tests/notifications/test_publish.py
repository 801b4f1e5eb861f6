"""``notification_publish``: the boundary the orders app calls inside its transactions."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from config.celery_app import app
from core.models import OutboxMessage
from notifications.errors import InvalidEventTypes
from notifications.models import (
    EmailNotification,
    EventType,
    NotificationEvent,
    WebhookDelivery,
    WebhookEndpoint,
)
from notifications.services import notification_publish, webhook_endpoint_create
from notifications.services.publishing import EMAIL_NOTIFICATION_TASK, WEBHOOK_DELIVERY_TASK
from tests.notifications.factories import WebhookEndpointFactory, order_payload


@pytest.mark.django_db
def test_an_event_gets_one_delivery_per_active_subscribed_endpoint_and_one_email():
    # given endpoints: two subscribed, one not subscribed, one inactive
    subscribed = [
        WebhookEndpointFactory.create(events=["order.reserved", "order.paid"]),
        WebhookEndpointFactory.create(events=["order.reserved"]),
    ]
    WebhookEndpointFactory.create(events=["order.paid"])
    WebhookEndpointFactory.create(events=["order.reserved"], active=False)

    # when a reservation is published
    event = notification_publish(event_type="order.reserved", payload=order_payload(), email="c@example.com")

    # then it is recorded with one delivery per subscribed active endpoint and one e-mail
    assert NotificationEvent.objects.get() == event
    assert event.payload == order_payload()
    deliveries = WebhookDelivery.objects.filter(event=event)
    assert sorted(d.endpoint_id for d in deliveries) == sorted(e.pk for e in subscribed)
    assert all(d.status == WebhookDelivery.Status.PENDING for d in deliveries)
    email = EmailNotification.objects.get(event=event)
    assert email.recipient == "c@example.com"
    # and one task message per delivery and e-mail waits in the outbox
    messages = {(m.task_name, tuple(m.args)) for m in OutboxMessage.objects.all()}
    assert messages == {(WEBHOOK_DELIVERY_TASK, (d.pk,)) for d in deliveries} | {(EMAIL_NOTIFICATION_TASK, (email.pk,))}


@pytest.mark.django_db
@pytest.mark.parametrize("event_type", ["order.pending", "order.completed"])
def test_events_that_do_not_mail_the_customer_send_no_email(event_type):
    WebhookEndpointFactory.create(events=[event_type])

    notification_publish(event_type=event_type, payload=order_payload(), email="c@example.com")

    assert not EmailNotification.objects.exists()
    assert WebhookDelivery.objects.count() == 1


@pytest.mark.django_db
def test_no_email_without_an_address():
    notification_publish(event_type="order.paid", payload=order_payload(), email=None)

    assert not EmailNotification.objects.exists()
    assert not OutboxMessage.objects.exists()


@pytest.mark.django_db
def test_an_unknown_event_type_is_refused():
    with pytest.raises(ValueError, match=r"order\.teleported"):
        notification_publish(event_type="order.teleported", payload=order_payload(), email=None)


@pytest.mark.django_db
def test_one_delivery_per_event_and_endpoint_and_one_email_per_event_are_enforced():
    endpoint = WebhookEndpointFactory.create()
    event = notification_publish(event_type="order.paid", payload=order_payload(), email="c@example.com")

    with pytest.raises(IntegrityError), transaction.atomic():
        WebhookDelivery.objects.create(event=event, endpoint=endpoint)
    with pytest.raises(IntegrityError), transaction.atomic():
        EmailNotification.objects.create(event=event, recipient="other@example.com")


@pytest.mark.django_db(transaction=True)
def test_publishing_outside_a_transaction_is_refused():
    with pytest.raises(RuntimeError, match="inside the business transaction"):
        notification_publish(event_type="order.paid", payload=order_payload(), email=None)

    assert not NotificationEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_business_transaction_leaves_no_notification():
    WebhookEndpointFactory.create()

    with pytest.raises(ZeroDivisionError), transaction.atomic():
        notification_publish(event_type="order.paid", payload=order_payload(), email="c@example.com")
        1 / 0  # noqa: B018 - the business change fails after publishing

    assert not NotificationEvent.objects.exists()
    assert not OutboxMessage.objects.exists()


def test_every_event_type_of_the_contract_is_known():
    states = [
        "pending",
        "reserved",
        "rejected",
        "cancelled",
        "paid",
        "expired",
        "shipped",
        "refunded",
        "completed",
    ]

    assert sorted(EventType.values) == sorted(f"order.{state}" for state in states)


def test_the_tasks_exist_and_run_on_the_notifications_queue():
    app.loader.import_default_modules()  # what a worker does at start (autodiscovery)

    for name in (WEBHOOK_DELIVERY_TASK, EMAIL_NOTIFICATION_TASK):
        assert name in app.tasks
        assert app.amqp.router.route({}, name)["queue"].name == "notifications"


@pytest.mark.django_db
@pytest.mark.parametrize("events", [[], ["order.teleported"], ["order.paid", "paid"]])
def test_an_endpoint_must_subscribe_to_known_event_types(events):
    with pytest.raises(InvalidEventTypes):
        webhook_endpoint_create(url="https://shop.example.com/hooks", events=events)

    assert not WebhookEndpoint.objects.exists()
