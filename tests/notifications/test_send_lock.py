"""The send lease of a notification (notifications/lock_objects.py), against PostgreSQL.

Through PgBouncer in transaction pooling the same is checked with real worker processes
(tests/flows/pgbouncer/).
"""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from notifications.lock_objects import send_lock
from notifications.models import SendLease
from notifications.services import Outcome, email_notification_send
from notifications.services.emails import SEND_LOCK_KIND as EMAIL_KIND
from tests.notifications.factories import EmailNotificationFactory

KIND = "webhook_delivery"


@pytest.mark.django_db
def test_the_lease_is_held_while_sending_and_gone_after():
    # when a sender takes the lease of a notification
    with send_lock(kind=KIND, object_id=7) as acquired:
        # then it holds it, until the lease's time is up
        assert acquired
        lease = SendLease.objects.get(kind=KIND, object_id=7)
        assert timezone.now() < lease.expires_at <= timezone.now() + timedelta(seconds=120)
    # and gives it back when done
    assert not SendLease.objects.exists()


@pytest.mark.django_db
def test_a_live_lease_is_not_taken_and_an_expired_one_is_taken_over():
    # given a notification whose lease another worker holds, and one whose holder died long ago
    other = uuid.uuid4()
    SendLease.objects.create(kind=KIND, object_id=1, holder=other, expires_at=timezone.now() + timedelta(seconds=60))
    SendLease.objects.create(kind=KIND, object_id=2, holder=other, expires_at=timezone.now() - timedelta(seconds=1))

    # then the first cannot be taken, and is left as it was
    with send_lock(kind=KIND, object_id=1) as acquired:
        assert not acquired
    assert SendLease.objects.get(object_id=1).holder == other
    # and the second is taken over, and given back
    with send_lock(kind=KIND, object_id=2) as acquired:
        assert acquired
        assert SendLease.objects.get(object_id=2).holder != other
    assert not SendLease.objects.filter(object_id=2).exists()
    # and the same id of another kind of notification is another lease
    with send_lock(kind=EMAIL_KIND, object_id=1) as acquired:
        assert acquired


@pytest.mark.django_db(transaction=True)
def test_of_many_workers_trying_at_once_exactly_one_holds_the_lease():
    # given 8 senders, each on its own database connection, released at the same moment
    senders = 8
    start = threading.Barrier(senders)
    holding = threading.Barrier(senders)
    taken: list[bool] = []

    def sender() -> None:
        try:
            start.wait()
            with send_lock(kind=KIND, object_id=99) as acquired:
                taken.append(acquired)
                holding.wait(timeout=30)  # everyone has tried while the winner still holds it
        finally:
            connection.close()

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    # then exactly one took it
    assert sorted(taken) == [False] * (senders - 1) + [True]
    assert not SendLease.objects.exists()


@pytest.mark.django_db
def test_an_email_being_sent_by_another_worker_is_tried_again_once_its_lease_is_over(settings):
    # given an e-mail whose lease another worker holds
    email = EmailNotificationFactory.create()
    SendLease.objects.create(
        kind=EMAIL_KIND, object_id=email.pk, holder=uuid.uuid4(), expires_at=timezone.now() + timedelta(seconds=60)
    )

    # when it is attempted here too
    result = email_notification_send(email_id=email.pk, attempt=1)

    # then nothing is sent now, and it is tried again after the lease
    assert result.outcome is Outcome.RETRY
    assert result.retry_in == settings.NOTIFY_SEND_LEASE_SECONDS
    email.refresh_from_db()
    assert email.attempt_count == 0
