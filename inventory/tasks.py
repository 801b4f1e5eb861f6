from __future__ import annotations

import logging

from celery import shared_task

from inventory.reconciliation import stock_reconcile

logger = logging.getLogger(__name__)


# Periodic: a failed run (PostgreSQL down) is acknowledged, not dead-lettered; the next tick
# checks again. Sent by beat to the orders queue (see CELERY_BEAT_SCHEDULE), not to inventory's,
# so its aggregate over the ledger never delays a reservation.
@shared_task(acks_on_failure_or_timeout=True)
def stock_reconcile_task() -> int:
    result = stock_reconcile()
    logger.info("Stock reconciliation: %d of %d product(s) drifted", result.drifted, result.products)
    return result.drifted
