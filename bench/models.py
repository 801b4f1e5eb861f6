from __future__ import annotations

from django.db import models
from django.utils import timezone


class BenchRow(models.Model):
    """The one row the write baseline inserts per request."""

    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)

    # Declared because the type checker runs with settings that do not install this app.
    objects: models.Manager[BenchRow] = models.Manager()

    def __str__(self) -> str:
        return f"BenchRow {self.pk}"
