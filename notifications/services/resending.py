"""Resending a webhook delivery or an e-mail on an operator's request."""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from core.outbox import outbox_enqueue
from notifications.errors import NotResendable
from notifications.lock_objects import email_notification_lock, webhook_delivery_lock
from notifications.models import EmailNotification, WebhookDelivery
from notifications.services.publishing import EMAIL_NOTIFICATION_TASK, WEBHOOK_DELIVERY_TASK


def webhook_delivery_resend(*, delivery_id: int) -> WebhookDelivery:
    """Queue a new run of a delivery that has not succeeded, with a fresh attempt budget.

    Typically one that was dead-lettered. Its status goes back to ``pending`` until the new
    run's first attempt. A run still scheduled (a retry of a ``failed`` delivery) is harmless:
    whichever run succeeds first, the other finds the delivery delivered and sends nothing.
    """
    with transaction.atomic(durable=True):
        delivery = webhook_delivery_lock(delivery_id=delivery_id)
        if delivery.status == WebhookDelivery.Status.SUCCEEDED:
            raise NotResendable("already delivered")
        if not delivery.endpoint.active:
            raise NotResendable("its endpoint is deactivated")
        delivery.status = WebhookDelivery.Status.PENDING
        delivery.next_attempt_at = None
        delivery.updated_at = timezone.now()
        delivery.save(update_fields=["status", "next_attempt_at", "updated_at"])
        outbox_enqueue(task_name=WEBHOOK_DELIVERY_TASK, args=[delivery.pk])
    return delivery


def email_notification_resend(*, email_id: int) -> EmailNotification:
    """Queue a new run of an e-mail that was not sent, with a fresh attempt budget."""
    with transaction.atomic(durable=True):
        email = email_notification_lock(email_id=email_id)
        if email.status == EmailNotification.Status.SENT:
            raise NotResendable("already sent")
        email.status = EmailNotification.Status.PENDING
        email.next_attempt_at = None
        email.updated_at = timezone.now()
        email.save(update_fields=["status", "next_attempt_at", "updated_at"])
        outbox_enqueue(task_name=EMAIL_NOTIFICATION_TASK, args=[email.pk])
    return email
