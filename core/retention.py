"""Retention: rows that only record the past are deleted once older than their table's limit.

Every table that grows with traffic has a rule (the ``*_RETENTION_*`` settings, README
"Retention"), applied every ``RETENTION_PRUNE_SECONDS`` by a periodic task of the table's app:

- published outbox rows, ``OUTBOX_RETENTION_HOURS``: ``core.outbox.outbox_prune``;
- idempotency keys, ``IDEMPOTENCY_KEY_RETENTION_HOURS`` (at least the contract's 24 hours):
  ``core.idempotency.idempotency_key_prune``;
- task failures, ``TASK_FAILURE_RETENTION_DAYS``: ``core.failures.task_failure_prune``;
- payment callback receipts, ``PAYMENT_RECEIPT_RETENTION_DAYS``:
  ``orders.services.retention.payment_receipt_prune``;
- webhook delivery attempts, ``WEBHOOK_ATTEMPT_RETENTION_DAYS``:
  ``notifications.services.retention.delivery_attempt_prune``.

Orders, their lines and their events are the business record and stay, as does the stock ledger
(stock is proven by summing it). :func:`rows_prune` deletes in batches, each its own short
transaction, oldest first through the index on the age column, so a prune holds few locks at a
time, never blocks the requests writing new rows, and reads only the rows it deletes.
"""

from __future__ import annotations

import time
from typing import Any

from django.db import transaction
from django.db.models import QuerySet

# Rows per transaction: enough that a backlog of millions goes in a few hundred statements, few
# enough that each holds its row locks and writes its WAL for a fraction of a second.
PRUNE_BATCH_SIZE = 2000
# A run stops after the batch that passes this and leaves the rest to the next run, so one beat
# tick never holds a worker for long (the first runs after an upgrade work off the backlog).
PRUNE_TIME_BUDGET_SECONDS = 20.0


def rows_prune(
    expired: QuerySet[Any],
    *,
    age_field: str,
    batch_size: int = PRUNE_BATCH_SIZE,
    time_budget_seconds: float | None = PRUNE_TIME_BUDGET_SECONDS,
) -> int:
    """Delete the rows of ``expired`` (every row past its retention), oldest ``age_field`` first,
    ``batch_size`` per transaction; returns how many.

    Safe beside a second pruner (two beats): each batch takes its rows with ``SKIP LOCKED``, so
    the two share the work instead of waiting for each other. ``age_field`` must be indexed.
    """
    started = time.monotonic()
    deleted = 0
    while True:
        with transaction.atomic(durable=True):
            ids = list(
                expired.select_for_update(skip_locked=True)
                .order_by(age_field)
                .values_list("pk", flat=True)[:batch_size]
            )
            if ids:
                # One DELETE: none of these tables has rows that depend on its rows.
                expired.model._base_manager.filter(pk__in=ids).delete()
        deleted += len(ids)
        if len(ids) < batch_size:
            return deleted
        if time_budget_seconds is not None and time.monotonic() - started > time_budget_seconds:
            return deleted
