from __future__ import annotations

import enum
from dataclasses import dataclass

from django.conf import settings

from notifications.backoff import retry_countdown
from notifications.webhook_client import Verdict


class Outcome(enum.StrEnum):
    SENT = "sent"
    SKIPPED = "skipped"  # already sent (or being sent by another worker, no retry left): nothing to do
    RETRY = "retry"  # failed, or being sent by another worker; the task retries after ``retry_in`` seconds
    GAVE_UP = "gave_up"  # failed for good; the task raises so its message is dead-lettered


@dataclass(frozen=True)
class SendResult:
    """What one attempt did, and so what the task must do next."""

    outcome: Outcome
    detail: str = ""
    retry_in: int | None = None


def next_retry_in(*, verdict: Verdict, attempt: int) -> int | None:
    """Seconds until the next attempt after failed ``attempt``, or None to give up.

    ``attempt`` counts the attempts of one task message (1, then one more per retry); at most
    ``NOTIFY_MAX_RETRIES`` attempts are made in total.
    """
    if verdict is not Verdict.RETRY or attempt >= settings.NOTIFY_MAX_RETRIES:
        return None
    return retry_countdown(
        attempt=attempt,
        base_seconds=settings.NOTIFY_BACKOFF_BASE_SECONDS,
        max_seconds=settings.NOTIFY_BACKOFF_MAX_SECONDS,
    )


def busy_result(*, attempt: int, what: str) -> SendResult:
    """What to do when another worker holds the send lock: try again later.

    Leaving the notification to that worker is not enough: if it dies before recording its
    attempt (a killed pool process), this message, already acknowledged, would have been the
    last one. The retry finds the notification sent and does nothing, or sends it.
    """
    detail = f"another worker is sending this {what}"
    retry_in = next_retry_in(verdict=Verdict.RETRY, attempt=attempt)
    if retry_in is None:
        return SendResult(Outcome.SKIPPED, detail)
    return SendResult(Outcome.RETRY, detail, retry_in=retry_in)


def give_up_reason(*, verdict: Verdict, attempt: int, error: str) -> str:
    if verdict is Verdict.PERMANENT:
        return f"permanent failure: {error}"
    return f"gave up after {attempt} attempt(s): {error}"
