"""Retention of the notifications app's records of the past (core/retention.py has the rules)."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from core.retention import rows_prune
from notifications.models import DeliveryAttempt


def delivery_attempt_prune() -> int:
    """Delete webhook delivery attempts older than ``WEBHOOK_ATTEMPT_RETENTION_DAYS``, in batches;
    returns how many. The delivery keeps its status, attempt count and last response; a retry's
    attempt number comes from that count, not from the attempts kept."""
    cutoff = timezone.now() - timedelta(days=settings.WEBHOOK_ATTEMPT_RETENTION_DAYS)
    return rows_prune(DeliveryAttempt.objects.filter(attempted_at__lt=cutoff), age_field="attempted_at")
