"""Customer e-mails: sending one."""

from __future__ import annotations

import logging
from datetime import timedelta

from django.utils import timezone

from core.log_context import log_context_bind_order
from notifications.emails import classify_email_error, email_message_build
from notifications.lock_objects import send_lock
from notifications.models import EmailNotification
from notifications.services.outcomes import Outcome, SendResult, busy_result, give_up_reason, next_retry_in
from notifications.webhook_client import Verdict

logger = logging.getLogger(__name__)

SEND_LOCK_KIND = "email_notification"


def email_notification_send(*, email_id: int, attempt: int) -> SendResult:
    """Make one attempt at sending an e-mail, record it, and say what the task does next.

    An e-mail already sent is not sent again. The SMTP conversation runs outside any
    transaction, under the e-mail's send lock (see notifications/lock_objects.py).
    """
    with send_lock(kind=SEND_LOCK_KIND, object_id=email_id) as acquired:
        if not acquired:
            return busy_result(attempt=attempt, what="e-mail")
        notification = EmailNotification.objects.select_related("event").get(pk=email_id)
        log_context_bind_order(notification.event.order_id)
        if notification.status == EmailNotification.Status.SENT:
            return SendResult(Outcome.SKIPPED, "already sent")
        error = ""
        verdict = Verdict.SUCCEEDED
        try:
            email_message_build(notification=notification).send(fail_silently=False)
        except Exception as exc:  # every failure is recorded and classified, none escapes
            verdict = classify_email_error(exc)
            error = f"{type(exc).__name__}: {exc}"
        return _attempt_record(notification, attempt=attempt, verdict=verdict, error=error)


def _attempt_record(notification: EmailNotification, *, attempt: int, verdict: Verdict, error: str) -> SendResult:
    """Record one attempt and the e-mail's new status (one statement). Call holding its send lock."""
    now = timezone.now()
    if verdict is Verdict.SUCCEEDED:
        notification.status = EmailNotification.Status.SENT
        notification.sent_at = now
        notification.next_attempt_at = None
        result = SendResult(Outcome.SENT)
    else:
        retry_in = next_retry_in(verdict=verdict, attempt=attempt)
        if retry_in is not None:
            notification.status = EmailNotification.Status.FAILED
            notification.next_attempt_at = now + timedelta(seconds=retry_in)
            result = SendResult(Outcome.RETRY, error, retry_in=retry_in)
        else:
            notification.status = EmailNotification.Status.DEAD_LETTERED
            notification.next_attempt_at = None
            result = SendResult(Outcome.GAVE_UP, give_up_reason(verdict=verdict, attempt=attempt, error=error))
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
