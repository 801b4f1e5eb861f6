"""One attempt at sending a notification, and what follows from it, in one place.

- the *verdict* of the attempt: an HTTP status (webhooks) or an exception (e-mail) is a success,
  a failure worth retrying, or a permanent one;
- the *retry decision*: after a failure, wait (exponential backoff with full jitter) and try
  again, up to ``NOTIFY_MAX_RETRIES`` attempts in all, or give up;
- the *stored status* that records it on the notification (``sent``/``succeeded``, ``failed``
  with the next attempt's time, ``dead_lettered``), and the outcome the task acts on.
"""

from __future__ import annotations

import enum
import math
import random
import smtplib
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from notifications.models import EmailNotification, WebhookDelivery

# Status codes worth another attempt besides 5xx: request timeout and rate limiting.
RETRYABLE_STATUS_CODES = frozenset({408, 429})
# 2**64 times any sane base is far beyond any cap; stops the float from overflowing.
_MAX_EXPONENT = 64


class Channel(enum.StrEnum):
    WEBHOOK = "webhook"
    EMAIL = "email"


class Verdict(enum.StrEnum):
    SUCCEEDED = "succeeded"
    RETRY = "retry"  # transient: try again later
    PERMANENT = "permanent"  # trying again cannot help: dead-letter at once


def classify_status(status_code: int) -> Verdict:
    """2xx succeeded; 5xx, 408 and 429 are retried; anything else (3xx, other 4xx) is permanent."""
    if 200 <= status_code < 300:
        return Verdict.SUCCEEDED
    if status_code >= 500 or status_code in RETRYABLE_STATUS_CODES:
        return Verdict.RETRY
    return Verdict.PERMANENT


def classify_email_error(exc: Exception) -> Verdict:
    """SMTP 5xx answers and bad messages are permanent; 4xx answers and network errors retry."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        return Verdict.PERMANENT if codes and all(code >= 500 for code in codes) else Verdict.RETRY
    if isinstance(exc, smtplib.SMTPResponseException):
        return Verdict.PERMANENT if exc.smtp_code >= 500 else Verdict.RETRY
    if isinstance(exc, OSError):  # connection refused, timeout, server disconnected
        return Verdict.RETRY
    return Verdict.PERMANENT  # a template error, a malformed address: trying again cannot help


def retry_countdown(*, attempt: int, base_seconds: float, max_seconds: float) -> int:
    """Whole seconds to wait after failed attempt ``attempt`` (1 = the first attempt).

    Full jitter: uniform between 0 and ``min(max_seconds, base_seconds * 2 ** (attempt - 1))``, so
    many deliveries failing at once spread their retries. Whole seconds, because RabbitMQ's
    native delayed delivery (Celery's countdowns on quorum queues) counts whole seconds.
    """
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    ceiling = min(max_seconds, base_seconds * 2 ** min(attempt - 1, _MAX_EXPONENT))
    if ceiling <= 0:
        return 0
    return math.ceil(random.uniform(0, ceiling))  # noqa: S311 - jitter, not a secret


def next_retry_in(*, verdict: Verdict, attempt: int) -> int | None:
    """Seconds until the next attempt after failed ``attempt`` of one task message, or None to
    give up: a permanent failure, or ``NOTIFY_MAX_RETRIES`` attempts made."""
    if verdict is not Verdict.RETRY or attempt >= settings.NOTIFY_MAX_RETRIES:
        return None
    return retry_countdown(
        attempt=attempt,
        base_seconds=settings.NOTIFY_BACKOFF_BASE_SECONDS,
        max_seconds=settings.NOTIFY_BACKOFF_MAX_SECONDS,
    )


class Outcome(enum.StrEnum):
    SENT = "sent"
    SKIPPED = "skipped"  # nothing to send (already sent, or its endpoint deactivated)
    RETRY = "retry"  # failed, or being sent by another worker; the task retries after ``retry_in`` seconds
    GAVE_UP = "gave_up"  # failed for good; the task raises so its message is dead-lettered
    # Not sent, and no attempt spent: an earlier event of the order is still on its way to the
    # endpoint. The task tries again after ``retry_in`` seconds.
    WAIT = "wait"


@dataclass(frozen=True)
class SendResult:
    """What one attempt did, and so what the task must do next."""

    outcome: Outcome
    detail: str = ""
    retry_in: int | None = None


# The status a notification is stored with after an attempt, by channel and outcome.
_STATUS_AFTER: dict[Channel, dict[Outcome, str]] = {
    Channel.WEBHOOK: {
        Outcome.SENT: WebhookDelivery.Status.SUCCEEDED,
        Outcome.RETRY: WebhookDelivery.Status.FAILED,
        Outcome.GAVE_UP: WebhookDelivery.Status.DEAD_LETTERED,
    },
    Channel.EMAIL: {
        Outcome.SENT: EmailNotification.Status.SENT,
        Outcome.RETRY: EmailNotification.Status.FAILED,
        Outcome.GAVE_UP: EmailNotification.Status.DEAD_LETTERED,
    },
}


@dataclass(frozen=True)
class Settlement:
    """An attempt's verdict turned into what to store and what the task does next."""

    result: SendResult
    status: str
    next_attempt_at: datetime | None


def attempt_settle(*, channel: Channel, verdict: Verdict, attempt: int, error: str, now: datetime) -> Settlement:
    if verdict is Verdict.SUCCEEDED:
        result = SendResult(Outcome.SENT)
    else:
        retry_in = next_retry_in(verdict=verdict, attempt=attempt)
        if retry_in is not None:
            result = SendResult(Outcome.RETRY, error, retry_in=retry_in)
        elif verdict is Verdict.PERMANENT:
            result = SendResult(Outcome.GAVE_UP, f"permanent failure: {error}")
        else:
            result = SendResult(Outcome.GAVE_UP, f"gave up after {attempt} attempt(s): {error}")
    next_attempt_at = now + timedelta(seconds=result.retry_in) if result.retry_in is not None else None
    return Settlement(result, _STATUS_AFTER[channel][result.outcome], next_attempt_at)


def busy_result(*, what: str) -> SendResult:
    """What to do when another attempt holds the send lease: try again once that lease is over.

    Leaving the notification to the holder is not enough: if it died before recording its
    attempt (a killed pool process), this message, already acknowledged, would have been the
    last one. By the retry the lease was released (the retry finds the notification sent and
    does nothing) or has expired (the retry takes it over and sends). It is retried whatever
    attempt this is: waiting for a lease is not a failed attempt, and giving up here could leave
    the notification to a holder that is gone.
    """
    return SendResult(
        Outcome.RETRY, f"another worker is sending this {what}", retry_in=settings.NOTIFY_SEND_LEASE_SECONDS
    )
