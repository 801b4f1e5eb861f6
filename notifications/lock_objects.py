"""Every lock the notifications app takes, taken one way.

Sending is guarded by ``send_lock``, a PostgreSQL *session* advisory lock held for the whole
attempt, including the HTTP request or SMTP conversation, which run outside any transaction
(nothing leaves the process inside one). Two copies of one task message (a redelivery, a replay
racing a retry) cannot send the same notification at the same time; the second does not send
and its task tries again later (``busy_result``). If the worker dies, its database connection
closes and PostgreSQL releases the lock, and that retry sends what it left unsent.

Under it the sender reads the notification, checks that it was not sent already, sends, and
writes the outcome, without a row lock: only the holder of the send lock writes a
notification's attempts, and the other writer, a resend (under the row lock, below), never
touches one that was sent. So a notification already sent is never sent again.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from django.db import DatabaseError, connection

from notifications.models import EmailNotification, WebhookDelivery

logger = logging.getLogger(__name__)


def _advisory_key(kind: str, object_id: int) -> int:
    digest = hashlib.sha256(f"notifications:{kind}:{object_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def send_lock(*, kind: str, object_id: int) -> Iterator[bool]:
    """Try to take the send lock of one notification; yields whether it was taken (no waiting)."""
    key = _advisory_key(kind, object_id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
        row = cursor.fetchone()
    acquired = bool(row and row[0])
    try:
        yield acquired
    finally:
        if acquired:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
            except DatabaseError:  # the connection is gone, and the lock with it
                logger.warning("Could not release the send lock of %s %s", kind, object_id, exc_info=True)


def webhook_delivery_lock(*, delivery_id: int) -> WebhookDelivery:
    """Lock one delivery row (with its event and endpoint read along). Call inside a transaction."""
    return (
        WebhookDelivery.objects.select_for_update(of=("self",)).select_related("event", "endpoint").get(pk=delivery_id)
    )


def email_notification_lock(*, email_id: int) -> EmailNotification:
    """Lock one e-mail row (with its event read along). Call inside a transaction."""
    return EmailNotification.objects.select_for_update(of=("self",)).select_related("event").get(pk=email_id)
