"""``notifications_publish``, the boundary the orders app calls inside its transactions, and the
fan-out task it queues (run here in-process with ``apply``; the flow tests run it in workers)."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.db import IntegrityError, transaction

from config.celery_app import app
from core.models import OutboxMessage
from core.outbox import OutboxTask
from notifications.errors import InvalidEventTypes
from notifications.models import (
    EmailNotification,
    EventType,
    NotificationEvent,
    WebhookDelivery,
    WebhookEndpoint,
)
from notifications.services import Notification, notifications_publish, webhook_endpoint_create
from notifications.services.publishing import (
    EMAIL_BATCH_SIZE,
    EMAIL_BATCH_TASK,
    EMAIL_NOTIFICATION_TASK,
    FAN_OUT_TASK,
    WEBHOOK_DELIVERY_TASK,
)
from notifications.services.publishing import MAX_EVENTS_MAILED_IN_TRANSACTION as FEW
from notifications.tasks import notification_fan_out_task
from tests.notifications.factories import WebhookEndpointFactory, order_payload


def publish_and_fan_out(event_type: str, email: str | None) -> NotificationEvent:
    """Publish as a business transaction does, then run the fan-out task it queued, if any."""
    event = notifications_publish(notifications=[Notification(event_type, order_payload(), email)])[0]
    for message in OutboxMessage.objects.filter(task_name=FAN_OUT_TASK):
        notification_fan_out_task.apply(args=message.args)
    return event


def fan_out_message() -> OutboxMessage:
    return OutboxMessage.objects.get(task_name=FAN_OUT_TASK)


def send_messages() -> set[tuple[str, tuple[object, ...]]]:
    """The send tasks queued, their arguments as tuples (an e-mail batch's ids too)."""
    return {
        (m.task_name, tuple(tuple(a) if isinstance(a, list) else a for a in m.args))
        for m in OutboxMessage.objects.exclude(task_name=FAN_OUT_TASK)
    }


@pytest.mark.django_db
def test_a_single_event_writes_its_email_and_leaves_its_deliveries_to_the_fan_out_task():
    # given subscribed endpoints
    WebhookEndpointFactory.create_batch(3, events=["order.reserved"])

    # when a reservation is published
    event = notifications_publish(notifications=[Notification("order.reserved", order_payload(), "c@example.com")])[0]

    # then the event, its e-mail and its send task are written, and one fan-out task for the deliveries
    assert NotificationEvent.objects.get() == event
    assert event.payload == order_payload()
    email = EmailNotification.objects.get(event=event)
    assert send_messages() == {(EMAIL_BATCH_TASK, ((email.pk,),))}
    assert fan_out_message().args == [[[str(event.id), "order.reserved", None]]]
    assert not WebhookDelivery.objects.exists()


@pytest.mark.django_db
def test_a_single_event_without_subscribed_endpoints_queues_no_fan_out():
    WebhookEndpointFactory.create(events=["order.paid"])
    WebhookEndpointFactory.create(events=["order.pending"], active=False)

    notifications_publish(notifications=[Notification("order.pending", order_payload(), "c@example.com")])

    assert not OutboxMessage.objects.exists()


@pytest.mark.django_db
def test_the_callers_tasks_share_the_outbox_statement(django_assert_num_queries):
    WebhookEndpointFactory.create(events=["order.pending"])
    task = OutboxTask("orders.tasks.order_reserve_task", [42])

    with django_assert_num_queries(4):  # sequence, event, subscribed endpoints, outbox
        notifications_publish(
            notifications=[Notification("order.pending", order_payload(), None)], enqueue_with=[task]
        )[0]

    assert {m.task_name for m in OutboxMessage.objects.all()} == {task.task_name, FAN_OUT_TASK}


@pytest.mark.django_db
def test_an_event_gets_one_delivery_per_active_subscribed_endpoint_and_one_email():
    # given endpoints: two subscribed, one not subscribed, one inactive
    subscribed = [
        WebhookEndpointFactory.create(events=["order.reserved", "order.paid"]),
        WebhookEndpointFactory.create(events=["order.reserved"]),
    ]
    WebhookEndpointFactory.create(events=["order.paid"])
    WebhookEndpointFactory.create(events=["order.reserved"], active=False)

    # when a reservation is published and fanned out
    event = publish_and_fan_out("order.reserved", "c@example.com")

    # then it has one delivery per subscribed active endpoint and one e-mail
    deliveries = WebhookDelivery.objects.filter(event=event)
    assert sorted(d.endpoint_id for d in deliveries) == sorted(e.pk for e in subscribed)
    assert all(d.status == WebhookDelivery.Status.PENDING for d in deliveries)
    email = EmailNotification.objects.get(event=event)
    assert email.recipient == "c@example.com"
    assert email.status == EmailNotification.Status.PENDING
    # and one task message per delivery and e-mail waits in the outbox
    assert send_messages() == {(WEBHOOK_DELIVERY_TASK, (d.pk,)) for d in deliveries} | {
        (EMAIL_BATCH_TASK, ((email.pk,),))
    }


@pytest.mark.django_db
def test_a_repeated_fan_out_creates_and_queues_nothing_more():
    # given an event fanned out once to two endpoints and an e-mail
    WebhookEndpointFactory.create_batch(2, events=["order.paid"])
    publish_and_fan_out("order.paid", "c@example.com")
    before = OutboxMessage.objects.count()

    # when its fan-out message is delivered again (relay, redelivery)
    result = notification_fan_out_task.apply(args=fan_out_message().args).get()

    # then nothing new is created or queued
    assert result == "0 deliveries, 0 e-mails"
    assert WebhookDelivery.objects.count() == 2
    assert EmailNotification.objects.count() == 1
    assert OutboxMessage.objects.count() == before


@pytest.mark.django_db
def test_a_few_events_write_their_emails_and_fan_out_only_the_subscribed_types(django_assert_num_queries):
    # given an endpoint subscribed to placements only
    WebhookEndpointFactory.create(events=["order.pending", "order.paid"])

    # when an order's placement and reservation are published together
    with django_assert_num_queries(5):  # sequences, events, subscribed types, e-mails, outbox
        placed, reserved = notifications_publish(
            notifications=[
                Notification("order.pending", order_payload(status="pending"), "c@example.com"),
                Notification("order.reserved", order_payload(), "c@example.com"),
            ]
        )

    # then the reservation's e-mail is written here, and the fan-out task has the placement only
    email = EmailNotification.objects.get()
    assert email.event == reserved
    assert send_messages() == {(EMAIL_BATCH_TASK, ((email.pk,),))}
    assert fan_out_message().args == [[[str(placed.id), "order.pending", None]]]


@pytest.mark.django_db
def test_a_batch_is_fanned_out_by_one_task(django_assert_num_queries):
    # given an endpoint subscribed to expiries
    WebhookEndpointFactory.create(events=["order.expired"])

    # when the sweeper publishes a batch, only the events and one task are written
    with django_assert_num_queries(3):  # sequences, events, the fan-out task
        events = notifications_publish(
            notifications=[Notification("order.expired", order_payload(), f"c{i}@example.com") for i in range(FEW + 1)]
        )
    assert not EmailNotification.objects.exists()

    # then the task creates every delivery and e-mail, and queues their sends: one per delivery,
    # and one for each EMAIL_BATCH_SIZE e-mails
    notification_fan_out_task.apply(args=fan_out_message().args)
    deliveries = WebhookDelivery.objects.filter(event__in=events)
    assert deliveries.count() == FEW + 1
    assert sorted(EmailNotification.objects.values_list("recipient", flat=True)) == sorted(
        f"c{i}@example.com" for i in range(FEW + 1)
    )
    emails = tuple(EmailNotification.objects.order_by("pk").values_list("pk", flat=True))
    assert send_messages() == {(WEBHOOK_DELIVERY_TASK, (d.pk,)) for d in deliveries} | {
        (EMAIL_BATCH_TASK, (emails[start : start + EMAIL_BATCH_SIZE],))
        for start in range(0, len(emails), EMAIL_BATCH_SIZE)
    }


@pytest.mark.django_db
@pytest.mark.parametrize("event_type", ["order.pending", "order.completed"])
def test_events_that_do_not_mail_the_customer_send_no_email(event_type):
    WebhookEndpointFactory.create(events=[event_type])

    publish_and_fan_out(event_type, "c@example.com")

    assert not EmailNotification.objects.exists()
    assert WebhookDelivery.objects.count() == 1


@pytest.mark.django_db
def test_no_email_without_an_address():
    publish_and_fan_out("order.paid", None)

    assert not EmailNotification.objects.exists()
    assert not send_messages()


@pytest.mark.django_db
def test_an_unknown_event_type_is_refused():
    with pytest.raises(ValueError, match=r"order\.teleported"):
        notifications_publish(notifications=[Notification("order.teleported", order_payload(), None)])


@pytest.mark.django_db
def test_one_delivery_per_event_and_endpoint_and_one_email_per_event_are_enforced():
    endpoint = WebhookEndpointFactory.create()
    event = publish_and_fan_out("order.paid", "c@example.com")

    with pytest.raises(IntegrityError), transaction.atomic():
        WebhookDelivery.objects.create(event=event, endpoint=endpoint)
    with pytest.raises(IntegrityError), transaction.atomic():
        EmailNotification.objects.create(event=event, recipient="other@example.com")


@pytest.mark.django_db(transaction=True)
def test_publishing_outside_a_transaction_is_refused():
    with pytest.raises(RuntimeError, match="inside the business transaction"):
        notifications_publish(notifications=[Notification("order.paid", order_payload(), None)])

    assert not NotificationEvent.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_business_transaction_leaves_no_notification():
    WebhookEndpointFactory.create()

    with pytest.raises(ZeroDivisionError), transaction.atomic():
        notifications_publish(notifications=[Notification("order.paid", order_payload(), "c@example.com")])
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


def test_webhooks_have_a_queue_of_their_own_and_e_mail_never_waits_behind_them():
    app.loader.import_default_modules()  # what a worker does at start (autodiscovery)

    routes = {name: app.amqp.router.route({}, name)["queue"].name for name in app.tasks if name.startswith("notif")}
    assert routes[WEBHOOK_DELIVERY_TASK] == "webhooks"
    assert routes[EMAIL_NOTIFICATION_TASK] == "email"
    assert routes[EMAIL_BATCH_TASK] == "email"
    # the fan-out writes e-mails too: it must not wait behind webhooks either
    assert routes[FAN_OUT_TASK] == "email"
    assert routes["notifications.tasks.delivery_attempt_prune_task"] == "orders"
    assert routes["notifications.tasks.webhook_endpoint_disabled_mail_task"] == "email"


def test_every_task_has_soft_and_hard_time_limits_and_sends_end_before_their_lease():
    app.loader.import_default_modules()

    for name, task in app.tasks.items():
        if name.startswith("celery."):
            continue
        soft = task.soft_time_limit or app.conf.task_soft_time_limit
        hard = task.time_limit or app.conf.task_time_limit
        assert soft and hard and soft < hard, name
    for name in (WEBHOOK_DELIVERY_TASK, EMAIL_NOTIFICATION_TASK, EMAIL_BATCH_TASK):
        task = app.tasks[name]
        assert settings.WEBHOOK_DEADLINE_SECONDS < task.soft_time_limit < task.time_limit
        assert task.time_limit < settings.NOTIFY_SEND_LEASE_SECONDS


@pytest.mark.django_db
@pytest.mark.parametrize("events", [[], ["order.teleported"], ["order.paid", "paid"]])
def test_an_endpoint_must_subscribe_to_known_event_types(events):
    with pytest.raises(InvalidEventTypes):
        webhook_endpoint_create(url="https://shop.example.com/hooks", events=events)

    assert not WebhookEndpoint.objects.exists()
