"""The inventory app's Prometheus metrics (plumbing in core/metrics.py)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from core.metrics import NAMESPACE
from inventory.reconciliation import stock_reconciliation_last


class StockLedgerCollector(Collector):
    """The last scheduled stock reconciliation's result (inventory/reconciliation.py)."""

    def collect(self) -> Iterator[Metric]:
        drift = GaugeMetricFamily(
            f"{NAMESPACE}_stock_ledger_drift_products",
            "Products whose stock differed from their initial stock plus their ledger at the last "
            "scheduled reconciliation; no sample when there is no recent result.",
        )
        checked = GaugeMetricFamily(
            f"{NAMESPACE}_stock_ledger_checked_timestamp_seconds",
            "Unix time of the last scheduled stock reconciliation.",
        )
        last = stock_reconciliation_last()
        if last is not None:
            drift.add_metric([], last.drifted)
            checked.add_metric([], last.checked_at)
        yield drift
        yield checked
