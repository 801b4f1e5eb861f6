"""Retention of the orders app's records of the past (core/retention.py has the rules).

Orders, their lines and their events stay: they are the business record. Payment callback
receipts go after ``PAYMENT_RECEIPT_RETENTION_DAYS``: a receipt exists to recognise the
provider's retries of a callback, which stop within days, and every payment that changed an
order, or could not, is on the order's events.
"""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from core.retention import rows_prune
from orders.models import PaymentWebhookReceipt


def payment_receipt_prune() -> int:
    """Delete receipts older than ``PAYMENT_RECEIPT_RETENTION_DAYS``, in batches; returns how many."""
    cutoff = timezone.now() - timedelta(days=settings.PAYMENT_RECEIPT_RETENTION_DAYS)
    return rows_prune(PaymentWebhookReceipt.objects.filter(received_at__lt=cutoff), age_field="received_at")
