"""Customer e-mails: sending one."""

from __future__ import annotations

import logging

from django.utils import timezone

from core.log_context import log_context_bind_order
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
from notifications.lock_objects import send_lock
from notifications.models import EmailNotification

logger = logging.getLogger(__name__)

SEND_LOCK_KIND = "email_notification"


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
        with client_span("email send", {"notification.event_type": notification.event.event_type}) as span:
            try:
                email_message_build(notification=notification).send(fail_silently=False)
            except Exception as exc:  # every failure is recorded and classified, none escapes
                verdict = classify_email_error(exc)
                error = f"{type(exc).__name__}: {exc}"
            span_outcome(span, error=error)
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
