"""Every lock the notifications app takes, taken one way.

Sending is guarded by ``send_lock`` (``send_locks`` for a batch): a lease, one row per
notification being sent, taken and released by single statements in autocommit. It holds no
database session or transaction open across the HTTP request or SMTP conversation, so it works
behind PgBouncer in transaction pooling (a session-level advisory lock would be taken on one
server connection and released on another, or seen as held by whichever client was given that
connection next), and a slow receiver never pins a pooled connection. Two copies of one task
message (a redelivery, a replay racing a retry, a message returned by a broker node that went
down while its worker still runs it) cannot send the same notification at the same time: the
second finds the lease held and tries again once it must have ended (``busy_result``).

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
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from django.conf import settings
from django.db import DatabaseError, connection
from django.shortcuts import get_object_or_404

from notifications.models import EmailNotification, SendLease, WebhookDelivery, WebhookEndpoint

logger = logging.getLogger(__name__)

_TABLE = SendLease._meta.db_table
# One statement: insert the leases, or take over those that have expired; returns the ids taken
# (not those whose live lease someone else holds). Concurrent takers serialise on the unique
# (kind, object_id) rows, taken in id order so that two batches never wait on each other in a circle.
_TAKE_SQL = f"""
    INSERT INTO {_TABLE} (kind, object_id, holder, expires_at)
    SELECT %s, object_id, %s, statement_timestamp() + make_interval(secs => %s)
    FROM unnest(%s::bigint[]) AS object_id
    ORDER BY object_id
    ON CONFLICT (kind, object_id) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
    WHERE {_TABLE}.expires_at <= statement_timestamp()
    RETURNING object_id
"""  # noqa: S608 - the table name is the model's, the values are parameters
_RELEASE_SQL = f"DELETE FROM {_TABLE} WHERE kind = %s AND object_id = ANY(%s) AND holder = %s"  # noqa: S608


@contextmanager
def send_locks(*, kind: str, object_ids: Sequence[int]) -> Iterator[set[int]]:
    """Try to take the send leases of some notifications of one kind, in one statement; yields
    the ids whose lease was taken (no waiting), and releases them all in one statement."""
    holder = uuid.uuid4()
    with connection.cursor() as cursor:
        cursor.execute(_TAKE_SQL, [kind, holder, settings.NOTIFY_SEND_LEASE_SECONDS, list(object_ids)])
        taken = {row[0] for row in cursor.fetchall()}
    try:
        yield taken
    finally:
        if taken:
            try:
                with connection.cursor() as cursor:
                    cursor.execute(_RELEASE_SQL, [kind, sorted(taken), holder])
            except DatabaseError:  # they expire by themselves
                logger.warning("Could not release the send leases of %s %s", kind, sorted(taken), exc_info=True)


@contextmanager
def send_lock(*, kind: str, object_id: int) -> Iterator[bool]:
    """Try to take the send lease of one notification; yields whether it was taken (no waiting)."""
    with send_locks(kind=kind, object_ids=[object_id]) as taken:
        yield object_id in taken


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
