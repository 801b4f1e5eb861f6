"""Every lock the notifications app takes, taken one way.

Sending is guarded by ``send_lock``: a lease, one row per notification being sent, taken and
released by single statements in autocommit. It holds no database session or transaction open
across the HTTP request or SMTP conversation, so it works behind PgBouncer in transaction
pooling (a session-level advisory lock would be taken on one server connection and released on
another, or seen as held by whichever client was given that connection next), and a slow
receiver never pins a pooled connection. Two copies of one task message (a redelivery, a replay
racing a retry, a message returned by a broker node that went down while its worker still runs
it) cannot send the same notification at the same time: the second finds the lease held and
tries again once it must have ended (``busy_result``).

A worker killed mid-send leaves its lease behind; it expires ``NOTIFY_SEND_LEASE_SECONDS`` after
it was taken, and the retry of the redelivered message takes it over and sends what was left
unsent. The lease must outlast any one attempt (keep it above the send tasks' time limit), or a
second copy could send while the first still does. Expiry is judged by the database's clock,
never a worker's.

Under it the sender reads the notification, checks that it was not sent already, sends, and
writes the outcome, without a row lock: only the holder of the lease writes a notification's
attempts, and the other writer, a resend (under the row lock, below), never touches one that
was sent. So a notification already sent is never sent again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import DatabaseError, connection
from django.shortcuts import get_object_or_404

from notifications.models import EmailNotification, SendLease, WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)

_TABLE = SendLease._meta.db_table
# One statement: insert the lease, or take over one that has expired; nothing returned when a
# live lease is held. Concurrent takers serialise on the unique (kind, object_id) row.
_TAKE_SQL = f"""
    INSERT INTO {_TABLE} (kind, object_id, holder, expires_at)
    VALUES (%s, %s, %s, statement_timestamp() + make_interval(secs => %s))
    ON CONFLICT (kind, object_id) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
    WHERE {_TABLE}.expires_at <= statement_timestamp()
    RETURNING holder
"""  # noqa: S608 - the table name is the model's, the values are parameters
_RELEASE_SQL = f"DELETE FROM {_TABLE} WHERE kind = %s AND object_id = %s AND holder = %s"  # noqa: S608


@contextmanager
def send_lock(*, kind: str, object_id: int) -> Iterator[bool]:
    """Try to take the send lease of one notification; yields whether it was taken (no waiting)."""
    holder = uuid.uuid4()
    with connection.cursor() as cursor:
        cursor.execute(_TAKE_SQL, [kind, object_id, holder, settings.NOTIFY_SEND_LEASE_SECONDS])
        acquired = cursor.fetchone() is not None
    try:
        yield acquired
    finally:
        if acquired:
            try:
                with connection.cursor() as cursor:
                    cursor.execute(_RELEASE_SQL, [kind, object_id, holder])
            except DatabaseError:  # it expires by itself
                logger.warning("Could not release the send lease of %s %s", kind, object_id, exc_info=True)


@contextmanager
def endpoint_slot(*, endpoint_id: int, slots: int) -> Iterator[bool]:
    """Try to take one of an endpoint's ``slots`` send slots (leases like ``send_lock``'s, so
    one left by a killed worker expires); yields whether one was taken (no waiting). Bounds how
    many worker processes one endpoint can hold at once, however slowly it answers."""
    for slot in range(slots):
        with send_lock(kind=f"webhook_endpoint_slot_{slot}", object_id=endpoint_id) as acquired:
            if acquired:
                yield True
                return
    yield False


def webhook_delivery_lock(*, delivery_id: int) -> WebhookDelivery:
    """Lock one delivery row (with its event and endpoint read along). Call inside a transaction."""
    return (
        WebhookDelivery.objects.select_for_update(of=("self",)).select_related("event", "endpoint").get(pk=delivery_id)
    )


def email_notification_lock(*, email_id: int) -> EmailNotification:
    """Lock one e-mail row (with its event read along). Call inside a transaction."""
    return EmailNotification.objects.select_for_update(of=("self",)).select_related("event").get(pk=email_id)


def webhook_endpoint_lock(*, endpoint_id: int) -> WebhookEndpoint:
    """Lock one endpoint the API still shows (404 otherwise). Call inside a transaction."""
    return get_object_or_404(WebhookEndpoint.objects.select_for_update(), pk=endpoint_id, deleted_at__isnull=True)
