"""Expire every reserved order whose payment deadline has passed, now."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from orders.services.expiry import EXPIRY_BATCH_SIZE, order_expire_overdue, overdue_count


class Command(BaseCommand):
    help = "Expire overdue reserved orders now and return their stock (what beat's sweeper does)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=EXPIRY_BATCH_SIZE, help="orders per transaction")

    def handle(self, *args: Any, batch_size: int, **options: Any) -> None:
        total = overdue_count()
        self.stdout.write(f"{total} overdue order(s) found.")
        started = time.monotonic()

        def progress(expired: int) -> None:
            self.stdout.write(f"  expired {expired}/{max(total, expired)}", ending="\n")
            self.stdout.flush()

        expired = order_expire_overdue(batch_size=batch_size, progress=progress)
        elapsed = time.monotonic() - started
        rate = expired / elapsed if elapsed > 0 else 0.0
        self.stdout.write(self.style.SUCCESS(f"Expired {expired} order(s) in {elapsed:.1f}s ({rate:.0f} orders/s)."))
