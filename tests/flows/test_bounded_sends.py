"""A hostile merchant endpoint costs a bounded amount: worker processes (concurrency 2, every
queue, as ``celery -A config worker`` runs by default), a receiver on loopback that trickles its
answer a byte at a time, and customers' e-mails published while it holds the worker."""

from __future__ import annotations

import pytest
from django.db import transaction

from notifications.models import DeliveryAttempt, EmailNotification, WebhookEndpoint
from notifications.services import Notification, notifications_publish, webhook_endpoint_create
from tests.conftest import FLOW_WORKER_ENV
from tests.notifications.factories import order_payload
from tests.notifications.receiver import TricklingReceiver
from tests.processes import wait_until

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]

DEADLINE = float(FLOW_WORKER_ENV["WEBHOOK_DEADLINE_SECONDS"])
# Enough webhook work queued ahead of the e-mails to hold both processes for 12 deadlines or more.
DELIVERIES = 12
# An e-mail may wait for the attempts in progress when it arrives (one deadline), plus the
# worker's own overhead; never for the webhook backlog.
EMAIL_ON_TIME = 2 * DEADLINE + 2


def publish(event_type: str, *, email: str | None, count: int) -> None:
    with transaction.atomic():
        notifications_publish(
            notifications=[Notification(event_type, order_payload(id=1000 + n), email) for n in range(count)]
        )


def test_a_trickling_receiver_costs_at_most_the_deadline_per_attempt_and_e_mail_never_waits_behind_it(live_worker):
    # given an endpoint that answers one byte every 0.3 s for far longer than the deadline
    trickler = TricklingReceiver(interval=0.3, lasting=30).start()
    endpoint = webhook_endpoint_create(url=trickler.url, events=["order.paid"])
    try:
        # and a backlog of deliveries to it that occupies the worker
        publish("order.paid", email=None, count=DELIVERIES)
        wait_until(lambda: len(trickler.connections) >= 2, timeout=30, message="both processes busy with the trickler")

        # when customers' e-mails are published behind them
        publish("order.reserved", email="patient@example.com", count=3)

        # then every e-mail is sent on time, while the trickler still has deliveries waiting
        emails = wait_until(
            lambda: (
                list(EmailNotification.objects.all())
                if EmailNotification.objects.filter(status=EmailNotification.Status.SENT).count() == 3
                else None
            ),
            timeout=30,
            message="the e-mails",
        )
        waits = [(e.sent_at - e.created_at).total_seconds() for e in emails if e.sent_at]
        assert max(waits) <= EMAIL_ON_TIME, waits
        assert DeliveryAttempt.objects.count() < DELIVERIES, "the webhook backlog was not ahead of the e-mails"

        # and no attempt held the worker much beyond the deadline
        wait_until(lambda: DeliveryAttempt.objects.count() >= 4, timeout=30, message="a few attempts")
        durations = list(DeliveryAttempt.objects.values_list("duration_ms", "error"))
        assert all(ms <= (DEADLINE + 1) * 1000 for ms, _ in durations), durations
        assert all(error.startswith("timeout") for _, error in durations), durations
        assert trickler.durations() and max(trickler.durations()) <= DEADLINE + 1, trickler.durations()
    finally:
        # the rest of the backlog is skipped, not sent
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(active=False)
        trickler.stop()
