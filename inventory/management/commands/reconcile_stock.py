"""Prove the stock ledger balances: available == initial stock + every later change."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from inventory.models import Product
from inventory.selectors import stock_discrepancies


class Command(BaseCommand):
    help = "Check that every product's stock equals its initial stock plus its ledger; exit 1 if not."

    def handle(self, *args: Any, **options: Any) -> None:
        checked = Product.objects.count()
        discrepancies = stock_discrepancies()
        for sku, available, ledger_total in discrepancies:
            self.stderr.write(
                f"{sku}: available {available}, ledger says {ledger_total} (difference {available - ledger_total:+d})"
            )
        if discrepancies:
            raise CommandError(f"{len(discrepancies)} of {checked} product(s) do not match their ledger.")
        self.stdout.write(self.style.SUCCESS(f"All {checked} product(s) match their stock ledger."))
