"""The stock ledger checked on a schedule, its result kept for the metrics.

``reconcile_stock`` proves the ledger balances when an operator asks; beat also runs the same
check every ``STOCK_RECONCILE_SECONDS`` (``stock_reconcile_task``), and the result is exported as
``orderservice_stock_ledger_drift_products`` so that a drift pages someone (the
``StockLedgerDrift`` alert) instead of waiting to be noticed.

The check sums the whole ledger, which grows with history: it runs on beat's schedule, never at
scrape time. Its result is kept in the cache (as JSON) for three intervals: the web processes
read it when Prometheus scrapes. No result (never run, Redis lost, beat stopped) exports no
sample rather than a made-up zero.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

from django.conf import settings
from django.core.cache import cache

from inventory.models import Product
from inventory.selectors import stock_discrepancies

logger = logging.getLogger(__name__)

CACHE_KEY = "inventory:stock_reconciliation"


@dataclass(frozen=True)
class StockReconciliation:
    checked_at: float  # unix time
    products: int
    drifted: int  # products whose stock differs from their initial stock plus their ledger


def stock_reconcile() -> StockReconciliation:
    """Check every product's stock against its ledger; log each difference; keep the result."""
    discrepancies = stock_discrepancies()
    for sku, available, ledger_total in discrepancies:
        logger.error(
            "Stock ledger drift: %s has %d available, its ledger says %d (difference %+d)",
            sku, available, ledger_total, available - ledger_total,
        )  # fmt: skip
    result = StockReconciliation(time.time(), Product.objects.count(), len(discrepancies))
    try:
        cache.set(CACHE_KEY, asdict(result), 3 * settings.STOCK_RECONCILE_SECONDS)
    except Exception:  # Redis is only where the metric reads it from: the check itself happened
        logger.warning("Stock reconciliation result not kept (cache unavailable)", exc_info=True)
    return result


def stock_reconciliation_last() -> StockReconciliation | None:
    """The last result kept by :func:`stock_reconcile`, if it is still there."""
    kept = cache.get(CACHE_KEY)
    return None if kept is None else StockReconciliation(**kept)
