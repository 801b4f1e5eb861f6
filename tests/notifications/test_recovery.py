"""Recovering a notification (``notifications_recover``): the one way the admin's Resend, the
API and ``dlq replay`` send a notification again, settling its dead letters."""

from __future__ import annotations

import pytest

from config import queues
from core.dead_letters import dead_letter_list, dead_letter_replay
from core.models import OutboxMessage
from notifications.attempts import Channel
from notifications.errors import AlreadyDelivered, NotResendable
from notifications.models import EmailNotification, WebhookDelivery
from notifications.services.publishing import EMAIL_NOTIFICATION_TASK, WEBHOOK_DELIVERY_TASK
from notifications.services.recovery import notification_recover, notifications_recover
from tests.notifications.factories import EmailNotificationFactory, WebhookDeliveryFactory, WebhookEndpointFactory
from tests.processes import dead_letter_to

pytestmark = pytest.mark.django_db

DEAD = WebhookDelivery.Status.DEAD_LETTERED


def queued_sends(task: str) -> list[list[int]]:
    return list(OutboxMessage.objects.filter(task_name=task).values_list("args", flat=True))


def test_a_dead_lettered_delivery_is_put_back_to_pending_with_a_new_send():
    # given a delivery that gave up
    delivery = WebhookDeliveryFactory.create(status=DEAD, attempt_count=3)

    # when it is recovered (without touching the broker)
    recovery = notifications_recover(channel=Channel.WEBHOOK, ids=[delivery.pk], settle_dead_letters=False)

    # then it is pending again, with a new send queued through the outbox
    assert recovery.recovered == [delivery.pk]
    delivery.refresh_from_db()
    assert (delivery.status, delivery.next_attempt_at) == (WebhookDelivery.Status.PENDING, None)
    assert queued_sends(WEBHOOK_DELIVERY_TASK) == [[delivery.pk]]


def test_a_delivered_notification_or_a_deactivated_endpoint_is_refused_and_nothing_changes():
    # given a delivered delivery, one to a deactivated endpoint and a sent e-mail
    delivered = WebhookDeliveryFactory.create(status=WebhookDelivery.Status.SUCCEEDED)
    switched_off = WebhookDeliveryFactory.create(status=DEAD, endpoint=WebhookEndpointFactory.create(active=False))
    sent = EmailNotificationFactory.create(status=EmailNotification.Status.SENT)

    # when each is recovered, then each is refused for its reason
    with pytest.raises(AlreadyDelivered, match="already delivered"):
        notification_recover(channel=Channel.WEBHOOK, notification_id=delivered.pk, settle_dead_letters=False)
    with pytest.raises(NotResendable, match="its endpoint is deactivated"):
        notification_recover(channel=Channel.WEBHOOK, notification_id=switched_off.pk, settle_dead_letters=False)
    with pytest.raises(AlreadyDelivered, match="already sent"):
        notification_recover(channel=Channel.EMAIL, notification_id=sent.pk, settle_dead_letters=False)

    # and nothing was queued or changed
    assert not OutboxMessage.objects.exists()
    switched_off.refresh_from_db()
    assert switched_off.status == DEAD


def test_recovering_removes_the_dead_letters_the_new_send_replaces_and_only_those(dead_letter_queues_empty):
    # given two dead-lettered e-mails, each with its dead letter, and an unrelated dead letter
    recovered, other = EmailNotificationFactory.create_batch(2, status=EmailNotification.Status.DEAD_LETTERED)
    replaced = dead_letter_to(queues.EMAIL, task=EMAIL_NOTIFICATION_TASK, args=[recovered.pk])
    kept = dead_letter_to(queues.EMAIL, task=EMAIL_NOTIFICATION_TASK, args=[other.pk])

    # when the first e-mail is recovered
    recovery = notifications_recover(channel=Channel.EMAIL, ids=[recovered.pk])

    # then its dead letter is gone and the other's is still there
    assert (recovery.recovered, recovery.dead_letters_settled, recovery.dead_letters_error) == ([recovered.pk], 1, "")
    assert [letter.id for letter in dead_letter_list()] == [kept]
    assert replaced != kept


def test_recovering_while_rabbitmq_is_down_still_queues_the_send(monkeypatch):
    # given a dead-lettered delivery, and RabbitMQ unreachable
    delivery = WebhookDeliveryFactory.create(status=DEAD)

    def unreachable(**kwargs):
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr("notifications.services.recovery.dead_letters_settle", unreachable)

    # when it is recovered
    recovery = notifications_recover(channel=Channel.WEBHOOK, ids=[delivery.pk])

    # then the send is queued, and the dead letters are left for later, which it says
    assert recovery.recovered == [delivery.pk]
    assert queued_sends(WEBHOOK_DELIVERY_TASK) == [[delivery.pk]]
    assert "RabbitMQ is unavailable" in recovery.dead_letters_error


# --- dlq replay goes through the same service -------------------------------------------------


def test_replaying_a_notifications_dead_letter_recovers_it(dead_letter_queues_empty):
    # given a dead-lettered delivery and its dead letter
    delivery = WebhookDeliveryFactory.create(status=DEAD, attempt_count=3)
    letter_id = dead_letter_to(queues.WEBHOOKS, task=WEBHOOK_DELIVERY_TASK, args=[delivery.pk])

    # when the dead letter is replayed
    result = dead_letter_replay(ids=[letter_id])

    # then the delivery is recovered as the admin's Resend recovers it, and the letter is gone
    assert [letter.id for letter in result.done] == [letter_id]
    assert result.notes[letter_id] == f"by sending webhook delivery {delivery.pk} again"
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.PENDING
    assert queued_sends(WEBHOOK_DELIVERY_TASK) == [[delivery.pk]]
    assert dead_letter_list() == []


def test_replaying_the_dead_letter_of_a_delivered_notification_only_removes_it(dead_letter_queues_empty):
    # given a delivery that succeeded since its dead letter was left (resent while RabbitMQ was down)
    delivery = WebhookDeliveryFactory.create(status=WebhookDelivery.Status.SUCCEEDED)
    letter_id = dead_letter_to(queues.WEBHOOKS, task=WEBHOOK_DELIVERY_TASK, args=[delivery.pk])

    # when it is replayed
    result = dead_letter_replay(ids=[letter_id])

    # then nothing is sent and the letter is settled
    assert "nothing left to send" in result.notes[letter_id]
    assert not OutboxMessage.objects.exists()
    assert dead_letter_list() == []


def test_a_dead_letter_the_service_refuses_stays_with_the_reason(dead_letter_queues_empty):
    # given a dead-lettered delivery to an endpoint that was deactivated since
    delivery = WebhookDeliveryFactory.create(status=DEAD, endpoint=WebhookEndpointFactory.create(active=False))
    letter_id = dead_letter_to(queues.WEBHOOKS, task=WEBHOOK_DELIVERY_TASK, args=[delivery.pk])

    # when it is replayed
    result = dead_letter_replay(ids=[letter_id])

    # then it is skipped, with why, and stays for the operator to purge
    assert result.done == []
    assert [(letter.id, reason) for letter, reason in result.skipped] == [
        (letter_id, f"webhook delivery {delivery.pk} is not resent: its endpoint is deactivated")
    ]
    assert [letter.id for letter in dead_letter_list()] == [letter_id]
