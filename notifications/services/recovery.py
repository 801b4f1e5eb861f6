"""Recovering a notification that was not delivered: the one way, whoever asks.

The admin's *Resend*, the API and ``manage.py dlq replay`` (its replay handler, named in the
``DEAD_LETTER_REPLAY_HANDLERS`` setting) all come here. Recovering a notification puts it back
to ``pending`` and queues a new send through the outbox, with a fresh attempt budget, in one
transaction under its row lock; then its dead letters, the messages of the sends that gave up,
are removed from ``webhooks.dlq`` or ``email.dlq``: the new send replaces them, and a dead letter left
behind would keep the dead-letter alert firing. A send still scheduled (a retry of a ``failed``
notification) is harmless: whichever send succeeds first, the other finds it delivered.

Refused, changing nothing (:class:`NotResendable`): a notification already delivered, and a
delivery to a deactivated endpoint.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.utils import timezone

from config import queues
from core.audit import audit_record
from core.dead_letters import DeadLetteredMessage, ReplayRefused, dead_letters_settle
from core.outbox import outbox_enqueue
from notifications.attempts import Channel
from notifications.errors import AlreadyDelivered, NotResendable
from notifications.lock_objects import email_notification_lock, webhook_delivery_lock
from notifications.models import EmailNotification, WebhookDelivery
from notifications.services.publishing import EMAIL_BATCH_TASK, EMAIL_NOTIFICATION_TASK, WEBHOOK_DELIVERY_TASK

logger = logging.getLogger(__name__)

SEND_TASKS = {Channel.WEBHOOK: WEBHOOK_DELIVERY_TASK, Channel.EMAIL: EMAIL_NOTIFICATION_TASK}
SEND_QUEUES = {Channel.WEBHOOK: queues.WEBHOOKS, Channel.EMAIL: queues.EMAIL}
_NOUNS = {Channel.WEBHOOK: "webhook delivery", Channel.EMAIL: "e-mail"}
_AUDIT_TARGETS = {Channel.WEBHOOK: "webhook_delivery", Channel.EMAIL: "email_notification"}


@dataclass
class Recovery:
    """What recovering some notifications did."""

    recovered: list[int] = field(default_factory=list)
    refused: dict[int, NotResendable] = field(default_factory=dict)  # id -> why
    dead_letters_settled: int = 0
    # Why their dead letters could not be removed (RabbitMQ unavailable); the sends are queued
    # all the same, and a later replay of such a letter finds nothing left to do or sends once.
    dead_letters_error: str = ""


def _requeue(channel: Channel, notification_id: int, actor: Any = None) -> None:
    """Put one notification back to ``pending`` and queue a new send of it; refuse what cannot be
    sent. With an ``actor`` (staff, not ``dlq replay``), the resend is audited as theirs."""
    with transaction.atomic(durable=True):
        notification: WebhookDelivery | EmailNotification
        if channel is Channel.WEBHOOK:
            notification = webhook_delivery_lock(delivery_id=notification_id)
            if notification.status == WebhookDelivery.Status.SUCCEEDED:
                raise AlreadyDelivered("already delivered")
            if not notification.endpoint.active:
                raise NotResendable("its endpoint is deactivated")
            before = {"status": notification.status}
            notification.status = WebhookDelivery.Status.PENDING
        else:
            notification = email_notification_lock(email_id=notification_id)
            if notification.status == EmailNotification.Status.SENT:
                raise AlreadyDelivered("already sent")
            before = {"status": notification.status}
            notification.status = EmailNotification.Status.PENDING
        notification.next_attempt_at = None
        notification.updated_at = timezone.now()
        notification.save(update_fields=["status", "next_attempt_at", "updated_at"])
        outbox_enqueue(task_name=SEND_TASKS[channel], args=[notification.pk])
        if actor is not None:
            audit_record(
                actor=actor,
                action=f"{_AUDIT_TARGETS[channel]}.resend",
                target_type=_AUDIT_TARGETS[channel],
                target_id=notification.pk,
                before=before,
                after={"status": notification.status},
            )


def notifications_recover(
    *, channel: Channel, ids: Sequence[int], settle_dead_letters: bool = True, actor: Any = None
) -> Recovery:
    """Recover each notification (its own transaction), then remove the dead letters of those
    recovered in one pass over the dead-letter queue. ``settle_dead_letters=False`` is for the
    replay handler, whose caller acknowledges the dead letter it holds."""
    recovery = Recovery()
    for notification_id in ids:
        try:
            _requeue(channel, notification_id, actor)
        except NotResendable as exc:
            recovery.refused[notification_id] = exc
        else:
            recovery.recovered.append(notification_id)
    if settle_dead_letters and recovery.recovered:
        task, recovered = SEND_TASKS[channel], set(recovery.recovered)

        def replaced(letter: DeadLetteredMessage) -> bool:
            args = letter.args if isinstance(letter.args, list) else []
            return letter.task == task and len(args) == 1 and args[0] in recovered

        try:
            recovery.dead_letters_settled = len(dead_letters_settle(queue=SEND_QUEUES[channel], matching=replaced))
        except Exception as exc:  # the sends are queued; only the clean-up waits for RabbitMQ
            logger.warning("Dead letters of recovered %ss not removed: %s", _NOUNS[channel], exc)
            recovery.dead_letters_error = f"RabbitMQ is unavailable ({exc})"
    return recovery


def notification_recover(
    *, channel: Channel, notification_id: int, settle_dead_letters: bool = True, actor: Any = None
) -> None:
    """Recover one notification; raises :class:`NotResendable` if it is refused."""
    recovery = notifications_recover(
        channel=channel, ids=[notification_id], settle_dead_letters=settle_dead_letters, actor=actor
    )
    if notification_id in recovery.refused:
        raise recovery.refused[notification_id]


def notification_dead_letter_replay(letter: DeadLetteredMessage) -> str:
    """``dlq replay`` of a notification's send: recover the notification (each of a batch's
    e-mails). A notification delivered since has nothing left to send, and its dead letter goes
    all the same."""
    args = letter.args if isinstance(letter.args, list) else []
    if letter.task == EMAIL_BATCH_TASK:
        ids = args[0] if len(args) == 1 and isinstance(args[0], list) else []
        if not ids or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise ReplayRefused(f"not an e-mail batch with its ids: {letter.task} {letter.args!r}")
        recovery = notifications_recover(channel=Channel.EMAIL, ids=ids, settle_dead_letters=False)
        return f"by sending {len(recovery.recovered)} of its {len(ids)} e-mails again (the others were sent)"
    channel = next((c for c, task in SEND_TASKS.items() if task == letter.task), None)
    if channel is None or len(args) != 1 or not isinstance(args[0], int):
        raise ReplayRefused(f"not a notification send with its id: {letter.task} {letter.args!r}")
    noun = f"{_NOUNS[channel]} {args[0]}"
    try:
        notification_recover(channel=channel, notification_id=args[0], settle_dead_letters=False)
    except AlreadyDelivered as exc:
        return f"as {noun} was {exc.message}: nothing left to send"
    except NotResendable as exc:
        raise ReplayRefused(f"{noun} is not resent: {exc.message}") from exc
    return f"by sending {noun} again"


RETRYABLE_DELIVERY_STATUSES = (WebhookDelivery.Status.FAILED, WebhookDelivery.Status.DEAD_LETTERED)


def webhook_delivery_retry(*, delivery: WebhookDelivery, actor: Any) -> None:
    """Staff's retry of one delivery: only a failed or dead-lettered one (a pending one is on its
    way already, a succeeded one is never sent again), recovered as every resend is, its dead
    letter settled. Raises :class:`NotResendable`."""
    if delivery.status == WebhookDelivery.Status.SUCCEEDED:
        raise AlreadyDelivered("This delivery succeeded; it is never sent again.")
    if delivery.status not in RETRYABLE_DELIVERY_STATUSES:
        raise NotResendable(f"Only a failed or dead-lettered delivery can be retried; this one is {delivery.status}.")
    notification_recover(channel=Channel.WEBHOOK, notification_id=delivery.pk, actor=actor)
