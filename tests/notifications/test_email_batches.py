"""E-mails published together are first sent together (``email_notifications_send``): one
connection to the mail server, their leases, reads and records in one statement each; what the
batch does not send goes, unrecorded, to each e-mail's own send."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta
from typing import ClassVar

import pytest
from django.core import mail
from django.core.mail import EmailMessage
from django.core.mail.backends.locmem import EmailBackend
from django.test import override_settings
from django.utils import timezone

from config import queues
from core.dead_letters import dead_letter_list, dead_letter_replay
from core.models import OutboxMessage
from notifications.models import EmailNotification, SendLease
from notifications.services import Notification, notifications_fan_out, notifications_publish
from notifications.services.emails import SEND_LOCK_KIND, email_notifications_send
from notifications.services.publishing import EMAIL_BATCH_SIZE, EMAIL_BATCH_TASK, EMAIL_NOTIFICATION_TASK
from notifications.tasks import email_notifications_send_task
from tests.notifications.factories import EmailNotificationFactory, order_payload
from tests.processes import dead_letter_to

pytestmark = pytest.mark.django_db

SENT = EmailNotification.Status.SENT
PENDING = EmailNotification.Status.PENDING
COUNTING = "tests.notifications.test_email_batches.CountingBackend"


class CountingBackend(EmailBackend):
    """The in-memory backend, counting the connections opened; refuses ``refused`` recipients."""

    opened: ClassVar[int] = 0
    refused: ClassVar[set[str]] = set()

    def open(self) -> bool:
        type(self).opened += 1
        return True

    def send_messages(self, messages: Sequence[EmailMessage]) -> int:
        if any(recipient in self.refused for message in messages for recipient in message.to):
            raise ConnectionResetError(104, "Connection reset by peer")
        return super().send_messages(messages)


@pytest.fixture
def counting(monkeypatch):
    monkeypatch.setattr(CountingBackend, "opened", 0)
    monkeypatch.setattr(CountingBackend, "refused", set())
    with override_settings(EMAIL_BACKEND=COUNTING):
        yield CountingBackend


def new_emails(count: int) -> list[EmailNotification]:
    return [EmailNotificationFactory.create(recipient=f"customer{n}@example.com") for n in range(count)]


def handed_over() -> list[list[int]]:
    return list(OutboxMessage.objects.filter(task_name=EMAIL_NOTIFICATION_TASK).values_list("args", flat=True))


def test_a_batch_sends_each_email_over_one_connection_and_records_it_sent(counting, django_assert_num_queries):
    # given three e-mails never attempted
    emails = new_emails(3)

    # when they are sent as a batch
    with django_assert_num_queries(4):  # leases taken, e-mails read, sent recorded, leases released
        batch = email_notifications_send(email_ids=[e.pk for e in emails])

    # then each went out once, all on one connection, and each is recorded as its first attempt
    assert sorted(m.to[0] for m in mail.outbox) == sorted(e.recipient for e in emails)
    assert counting.opened == 1
    assert (batch.sent, batch.skipped, batch.handed_over) == (sorted(e.pk for e in emails), [], [])
    for email in emails:
        email.refresh_from_db()
        assert (email.status, email.attempt_count, email.last_error) == (SENT, 1, "")
        assert email.sent_at is not None
    # and no lease is left, and no other send was queued
    assert not SendLease.objects.exists()
    assert handed_over() == []


def test_an_email_sent_or_attempted_before_is_left_alone(counting):
    # given an e-mail sent, one whose own send failed once (its retry is scheduled), one that gave
    # up and was resent by staff (pending again, its own send queued), and a new one
    sent = EmailNotificationFactory.create(status=SENT, attempt_count=1)
    retrying = EmailNotificationFactory.create(status=EmailNotification.Status.FAILED, attempt_count=1)
    resent = EmailNotificationFactory.create(status=PENDING, attempt_count=3)
    [new] = new_emails(1)

    # when the batch runs (a redelivered message, say)
    batch = email_notifications_send(email_ids=[sent.pk, retrying.pk, resent.pk, new.pk])

    # then only the new one is sent; the others are left to their own sends, untouched
    assert [m.to[0] for m in mail.outbox] == [new.recipient]
    assert (batch.sent, batch.skipped, batch.handed_over) == ([new.pk], sorted([sent.pk, retrying.pk, resent.pk]), [])
    for email, status, attempts in ((retrying, EmailNotification.Status.FAILED, 1), (resent, PENDING, 3)):
        email.refresh_from_db()
        assert (email.status, email.attempt_count) == (status, attempts)
    assert handed_over() == []


def test_the_first_failure_ends_the_batch_and_hands_the_rest_over_unrecorded(counting):
    # given three e-mails, the mail server failing on the second
    first, second, third = new_emails(3)
    counting.refused = {second.recipient}

    # when they are sent as a batch
    batch = email_notifications_send(email_ids=[third.pk, second.pk, first.pk])

    # then the first was sent and recorded; the third was not even tried
    assert [m.to[0] for m in mail.outbox] == [first.recipient]
    assert (batch.sent, batch.handed_over) == ([first.pk], [second.pk, third.pk])
    # and the other two are left as they were, each queued to its own send, the leases released
    for email in (second, third):
        email.refresh_from_db()
        assert (email.status, email.attempt_count, email.last_error) == (PENDING, 0, "")
    assert handed_over() == [[second.pk], [third.pk]]
    assert not SendLease.objects.exists()


def test_an_email_another_worker_is_sending_is_handed_over_not_sent(counting):
    # given two e-mails, one under another worker's live lease
    held, free = new_emails(2)
    holder = uuid.uuid4()
    SendLease.objects.create(
        kind=SEND_LOCK_KIND, object_id=held.pk, holder=holder, expires_at=timezone.now() + timedelta(minutes=1)
    )

    # when they are sent as a batch
    batch = email_notifications_send(email_ids=[held.pk, free.pk])

    # then only the free one is sent; the held one goes to its own send, its lease untouched
    assert [m.to[0] for m in mail.outbox] == [free.recipient]
    assert (batch.sent, batch.handed_over) == ([free.pk], [held.pk])
    assert handed_over() == [[held.pk]]
    assert list(SendLease.objects.values_list("object_id", "holder")) == [(held.pk, holder)]


def test_the_task_counts_and_reports_what_its_batch_did(counting):
    sent, failed = new_emails(2)
    counting.refused = {failed.recipient}

    result = email_notifications_send_task.apply(args=([sent.pk, failed.pk],)).get()

    assert result == "1 sent, 0 skipped, 1 handed over"


def test_emails_published_together_are_queued_in_batches():
    # given more e-mails than a batch holds, published together (a sweep: fanned out by a task)
    count = EMAIL_BATCH_SIZE + 3
    events = notifications_publish(
        notifications=[
            Notification("order.cancelled", order_payload(id=1000 + n), f"c{n}@example.com") for n in range(count)
        ]
    )

    # when they are fanned out
    notifications_fan_out(events=[[str(e.id), e.event_type, f"c{n}@example.com"] for n, e in enumerate(events)])

    # then their e-mails are queued in two batches, each e-mail in exactly one
    batches = [m.args[0] for m in OutboxMessage.objects.filter(task_name=EMAIL_BATCH_TASK).order_by("created_at")]
    assert sorted(len(b) for b in batches) == [3, EMAIL_BATCH_SIZE]
    assert sorted(i for b in batches for i in b) == sorted(EmailNotification.objects.values_list("pk", flat=True))
    assert handed_over() == []


def test_replaying_a_dead_lettered_batch_sends_again_what_it_did_not_send(dead_letter_queues_empty):
    # given a batch's dead letter: one of its e-mails was sent since, the other never was
    sent = EmailNotificationFactory.create(status=SENT, attempt_count=1)
    unsent = EmailNotificationFactory.create()
    letter_id = dead_letter_to(queues.EMAIL, task=EMAIL_BATCH_TASK, args=[[sent.pk, unsent.pk]])

    # when it is replayed
    result = dead_letter_replay(ids=[letter_id])

    # then the unsent one gets its own send, and the letter is settled
    assert result.notes[letter_id] == "by sending 1 of its 2 e-mails again (the others were sent)"
    assert handed_over() == [[unsent.pk]]
    assert dead_letter_list() == []
