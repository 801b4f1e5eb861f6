"""Customer e-mails: sending them in batches, and sending one.

E-mails published together (the orders of one reservation batch, one sweep of the expiry) are
first sent together: one task, one connection to the mail server, one statement for the leases,
one to read them and one to record those sent (:func:`email_notifications_send`). That is a first
attempt only. An e-mail the batch did not send (the server refused it or failed, or another
worker holds its lease) is handed, unrecorded, to its own send (:func:`email_notification_send`),
which tries it at once and carries its retries, its recorded attempts and its dead letter.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from django.core.mail import get_connection
from django.core.mail.backends.base import BaseEmailBackend
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from core.log_context import log_context_bind_order
from core.outbox import OutboxTask, outbox_enqueue_many
from core.tracing import client_span, span_outcome
from notifications.attempts import (
    Channel,
    Outcome,
    SendResult,
    Verdict,
    attempt_settle,
    busy_result,
    classify_email_error,
)
from notifications.email_messages import email_message_build
from notifications.lock_objects import send_lock, send_locks
from notifications.models import EmailNotification
from notifications.services.publishing import EMAIL_NOTIFICATION_TASK

logger = logging.getLogger(__name__)

SEND_LOCK_KIND = "email_notification"


@dataclass(frozen=True)
class EmailBatch:
    """What a batch did with each of its e-mails (ids)."""

    sent: list[int]
    # Already sent, or already in the hands of their own send (attempted before, or settled).
    skipped: list[int]
    # Left to their own send: not sent by the batch, nothing recorded.
    handed_over: list[int]


def email_notifications_send(*, email_ids: Sequence[int]) -> EmailBatch:
    """Make the first attempt at many e-mails over one connection to the mail server.

    Only e-mails never attempted are sent; the first failure ends the batch (a server that
    refuses or hangs would refuse or hang for the rest too, each waiting ``EMAIL_TIMEOUT``), and
    that e-mail and those after it are handed over, as are those whose lease another worker
    holds. Those sent are recorded in one statement, under their leases; the hand-over is queued
    through the outbox once the leases are released, so that no send finds them held. Run again
    (a message redelivered), it sends only what is still unsent and never attempted.
    """
    ids = sorted(set(email_ids))
    with send_locks(kind=SEND_LOCK_KIND, object_ids=ids) as taken:
        notifications = list(EmailNotification.objects.select_related("event").filter(pk__in=taken).order_by("pk"))
        unsent = [n for n in notifications if n.status == EmailNotification.Status.PENDING and n.attempt_count == 0]
        sent = _send_over_one_connection(unsent)
        if sent:
            _sent_record(sent)
    sent_ids = {n.pk for n in sent}
    batch = EmailBatch(
        sent=sorted(sent_ids),
        skipped=sorted({n.pk for n in notifications} - {n.pk for n in unsent}),
        handed_over=[i for i in ids if i not in taken] + [n.pk for n in unsent if n.pk not in sent_ids],
    )
    if batch.handed_over:
        with transaction.atomic(durable=True):
            outbox_enqueue_many([OutboxTask(EMAIL_NOTIFICATION_TASK, [email_id]) for email_id in batch.handed_over])
    return batch


def _send_over_one_connection(notifications: Sequence[EmailNotification]) -> list[EmailNotification]:
    """Send each in turn on one connection until the first failure; returns those sent."""
    sent: list[EmailNotification] = []
    if not notifications:
        return sent
    try:
        with get_connection(fail_silently=False) as mail:  # opened once, closed on leaving
            for notification in notifications:
                log_context_bind_order(notification.event.order_id)
                _send_traced(mail, notification)
                sent.append(notification)
    except Exception as exc:  # every failure ends the batch; its e-mails go to their own sends
        logger.warning(
            "E-mail batch stopped after %d of %d sent: %s: %s", len(sent), len(notifications), type(exc).__name__, exc
        )
    return sent


def _send_traced(mail: BaseEmailBackend, notification: EmailNotification) -> None:
    """Send one e-mail on ``mail`` in a client span that records a failure; raises it."""
    with client_span("email send", {"notification.event_type": notification.event.event_type}) as span:
        try:
            mail.send_messages([email_message_build(notification=notification)])
        except Exception as exc:
            span_outcome(span, error=f"{type(exc).__name__}: {exc}")
            raise


def _sent_record(notifications: Sequence[EmailNotification]) -> None:
    """Record the first attempt of e-mails sent, in one statement. Call holding their send leases."""
    now = timezone.now()
    settled = attempt_settle(channel=Channel.EMAIL, verdict=Verdict.SUCCEEDED, attempt=1, error="", now=now)
    EmailNotification.objects.filter(pk__in=[n.pk for n in notifications]).update(
        status=settled.status,
        attempt_count=F("attempt_count") + 1,
        last_error="",
        next_attempt_at=settled.next_attempt_at,
        sent_at=now,
        updated_at=now,
    )
    for notification in notifications:
        log_context_bind_order(notification.event.order_id)
        logger.info("E-mail %s (%s) attempt 1: sent", notification.pk, notification.event.event_type)


def email_notification_send(*, email_id: int, attempt: int) -> SendResult:
    """Make one attempt at sending an e-mail, record it, and say what the task does next.

    An e-mail already sent is not sent again. The SMTP conversation runs outside any
    transaction, under the e-mail's send lock (see notifications/lock_objects.py).
    """
    with send_lock(kind=SEND_LOCK_KIND, object_id=email_id) as acquired:
        if not acquired:
            return busy_result(what="e-mail")
        notification = EmailNotification.objects.select_related("event").get(pk=email_id)
        log_context_bind_order(notification.event.order_id)
        if notification.status == EmailNotification.Status.SENT:
            return SendResult(Outcome.SKIPPED, "already sent")
        error = ""
        verdict = Verdict.SUCCEEDED
        try:
            _send_traced(get_connection(fail_silently=False), notification)
        except Exception as exc:  # every failure is recorded and classified, none escapes
            verdict = classify_email_error(exc)
            error = f"{type(exc).__name__}: {exc}"
        return _attempt_record(notification, attempt=attempt, verdict=verdict, error=error)


def _attempt_record(notification: EmailNotification, *, attempt: int, verdict: Verdict, error: str) -> SendResult:
    """Record one attempt and the e-mail's new status (one statement). Call holding its send lock."""
    now = timezone.now()
    settled = attempt_settle(channel=Channel.EMAIL, verdict=verdict, attempt=attempt, error=error, now=now)
    result = settled.result
    notification.status = settled.status
    notification.next_attempt_at = settled.next_attempt_at
    if result.outcome is Outcome.SENT:
        notification.sent_at = now
    notification.attempt_count += 1
    notification.last_error = error
    notification.updated_at = now
    notification.save(
        update_fields=["status", "attempt_count", "last_error", "next_attempt_at", "sent_at", "updated_at"]
    )
    logger.info(
        "E-mail %s (%s) attempt %d: %s",
        notification.pk,
        notification.event.event_type,
        notification.attempt_count,
        result.outcome,
    )
    return result
