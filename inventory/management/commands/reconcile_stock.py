"""Prove the stock ledger balances: available == initial stock + every later change."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from inventory.models import Product
from inventory.selectors import stock_discrepancies


class Command(BaseCommand):
    help = "Check that every product's stock equals its initial stock plus its ledger; exit 1 if not."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--json",
            action="store_true",
            dest="as_json",
            help="print the result as one JSON object (for scripts and monitoring); the exit status is the same",
        )

    def handle(self, *args: Any, as_json: bool, **options: Any) -> None:
        checked_at = timezone.now()
        checked = Product.objects.count()
        discrepancies = stock_discrepancies()
        if as_json:
            self._print_json(checked_at=checked_at, checked=checked, discrepancies=discrepancies)
        else:
            for sku, available, ledger_total in discrepancies:
                self.stderr.write(
                    f"{sku}: available {available}, ledger says {ledger_total} "
                    f"(difference {available - ledger_total:+d})"
                )
        if discrepancies:
            raise CommandError(f"{len(discrepancies)} of {checked} product(s) do not match their ledger.")
        if not as_json:
            self.stdout.write(self.style.SUCCESS(f"All {checked} product(s) match their stock ledger."))

    def _print_json(self, *, checked_at: Any, checked: int, discrepancies: list[tuple[str, int, int]]) -> None:
        result = {
            "ok": not discrepancies,
            "checked_at": checked_at.isoformat(),
            "products_checked": checked,
            "products_drifted": len(discrepancies),
            "discrepancies": [
                {"sku": sku, "available": available, "ledger_total": total, "difference": available - total}
                for sku, available, total in discrepancies
            ],
        }
        self.stdout.write(json.dumps(result))
