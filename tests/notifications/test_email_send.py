from __future__ import annotations

import smtplib

import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.test import override_settings

from notifications.models import EMAIL_EVENT_TYPES, EmailNotification
from notifications.services import Outcome, email_notification_send
from tests.notifications.email_backends import FailingBackend
from tests.notifications.factories import EmailNotificationFactory, NotificationEventFactory, order_payload

pytestmark = pytest.mark.django_db

FAILING = "tests.notifications.email_backends.FailingBackend"


def test_a_reserved_order_is_mailed_with_its_pay_by_deadline_as_text_and_html():
    # given an e-mail for a reservation
    email = EmailNotificationFactory.create(recipient="buyer@example.com")

    # when it is sent
    result = email_notification_send(email_id=email.pk, attempt=1)

    # then one message went out, in both forms, naming the deadline
    assert result.outcome is Outcome.SENT
    [message] = mail.outbox
    assert isinstance(message, EmailMultiAlternatives)
    assert message.to == ["buyer@example.com"]
    assert message.subject == "Order #42 is reserved: please pay by 2 January 2030, 03:04 UTC"
    assert "Please pay 29.00 USD by 2 January 2030, 03:04 UTC" in message.body
    assert "2 x Mug (MUG-1), 12.50 each: 25.00 USD" in message.body
    [(html, mimetype)] = message.alternatives
    assert isinstance(html, str)
    assert mimetype == "text/html"
    assert "by 2 January 2030, 03:04 UTC" in html
    assert message.extra_headers["Message-ID"] == f"<notification-{email.event_id}@localhost>"
    email.refresh_from_db()
    assert (email.status, email.attempt_count) == (EmailNotification.Status.SENT, 1)
    assert email.sent_at is not None


@pytest.mark.parametrize("event_type", sorted(EMAIL_EVENT_TYPES))
def test_every_mailed_event_has_a_subject_text_and_html(event_type):
    email = EmailNotificationFactory.create(
        event=NotificationEventFactory.create(event_type=event_type, payload=order_payload(status=event_type[6:]))
    )

    email_notification_send(email_id=email.pk, attempt=1)

    [message] = mail.outbox
    assert isinstance(message, EmailMultiAlternatives)
    assert "Order #42" in message.subject or "order #42" in message.subject
    assert "\n" not in message.subject
    assert "Total: 29.00 USD" in message.body
    assert "&lt;" not in message.body  # the text part is not HTML-escaped
    assert "<table" in str(message.alternatives[0][0])


def test_html_in_order_data_is_escaped_in_the_html_part_only():
    items = [{"sku": "X", "name": "<b>Bold</b>", "quantity": 1, "unit_price": "1.00", "line_total": "1.00"}]
    email = EmailNotificationFactory.create(event=NotificationEventFactory.create(payload=order_payload(items=items)))

    email_notification_send(email_id=email.pk, attempt=1)

    [message] = mail.outbox
    assert isinstance(message, EmailMultiAlternatives)
    assert "<b>Bold</b>" in message.body
    assert "&lt;b&gt;Bold&lt;/b&gt;" in str(message.alternatives[0][0])


@override_settings(EMAIL_BACKEND=FAILING, NOTIFY_MAX_RETRIES=3)
def test_an_unreachable_mail_server_is_retried_then_given_up(monkeypatch):
    monkeypatch.setattr(FailingBackend, "error", ConnectionRefusedError(111, "Connection refused"))
    email = EmailNotificationFactory.create()

    first = email_notification_send(email_id=email.pk, attempt=1)
    last = email_notification_send(email_id=email.pk, attempt=3)

    assert first.outcome is Outcome.RETRY
    assert last.outcome is Outcome.GAVE_UP
    assert last.detail == "gave up after 3 attempt(s): ConnectionRefusedError: [Errno 111] Connection refused"
    email.refresh_from_db()
    assert (email.status, email.attempt_count) == (EmailNotification.Status.DEAD_LETTERED, 2)


@override_settings(EMAIL_BACKEND=FAILING)
def test_a_refused_recipient_is_given_up_at_once(monkeypatch):
    monkeypatch.setattr(
        FailingBackend, "error", smtplib.SMTPRecipientsRefused({"x@example.com": (550, b"no such user")})
    )
    email = EmailNotificationFactory.create()

    result = email_notification_send(email_id=email.pk, attempt=1)

    assert result.outcome is Outcome.GAVE_UP
    assert result.detail.startswith("permanent failure: SMTPRecipientsRefused")


def test_an_email_already_sent_is_not_sent_again():
    email = EmailNotificationFactory.create()
    email_notification_send(email_id=email.pk, attempt=1)

    result = email_notification_send(email_id=email.pk, attempt=1)

    assert result.outcome is Outcome.SKIPPED
    assert len(mail.outbox) == 1
