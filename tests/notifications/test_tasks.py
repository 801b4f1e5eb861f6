"""The tasks' decisions, run in process with ``apply`` (retries run at once, without the broker;
the flow tests cover the real thing)."""

from __future__ import annotations

import pytest
from django import db
from django.test import override_settings

from notifications import tasks
from notifications.errors import NotificationGaveUp
from notifications.services import Outcome, SendResult

pytestmark = pytest.mark.django_db


@override_settings(NOTIFY_MAX_RETRIES=3)
def test_a_database_outage_is_retried_within_the_attempt_budget(monkeypatch):
    # given PostgreSQL unreachable
    calls: list[int] = []

    def unreachable(*, delivery_id: int, attempt: int, waited: int) -> SendResult:
        calls.append(attempt)
        raise db.OperationalError("connection refused")

    monkeypatch.setattr(tasks, "webhook_delivery_send", unreachable)

    # when the task runs
    result = tasks.webhook_delivery_send_task.apply(args=(1,))

    # then it was attempted NOTIFY_MAX_RETRIES times, then failed with the outage
    assert calls == [1, 2, 3]
    assert isinstance(result.result, db.OperationalError)


@override_settings(NOTIFY_MAX_RETRIES=3)
def test_a_retry_outcome_retries_and_a_give_up_raises(monkeypatch):
    outcomes = iter([SendResult(Outcome.RETRY, "HTTP 500", retry_in=1), SendResult(Outcome.GAVE_UP, "HTTP 404")])
    monkeypatch.setattr(tasks, "email_notification_send", lambda *, email_id, attempt: next(outcomes))

    result = tasks.email_notification_send_task.apply(args=(1,))

    assert isinstance(result.result, NotificationGaveUp)
    assert str(result.result) == "HTTP 404"


@pytest.mark.parametrize("outcome", [Outcome.SENT, Outcome.SKIPPED])
def test_a_sent_or_skipped_notification_ends_the_task(monkeypatch, outcome):
    monkeypatch.setattr(tasks, "webhook_delivery_send", lambda *, delivery_id, attempt, waited: SendResult(outcome))

    assert tasks.webhook_delivery_send_task.apply(args=(1,)).get() == outcome.value
