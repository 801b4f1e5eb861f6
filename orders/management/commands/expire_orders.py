"""Expire every reserved order whose payment deadline has passed, now."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from core.admin_tools import duration_display
from orders.services.expiry import EXPIRY_BATCH_SIZE, order_expire_overdue, overdue_count, overdue_first

# Orders a dry run names (the most overdue first); the count covers them all.
DRY_RUN_SHOWN = 20


class Command(BaseCommand):
    help = "Expire overdue reserved orders now and return their stock (what beat's sweeper does)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=EXPIRY_BATCH_SIZE, help="orders per transaction")
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help=f"count the overdue orders and show the {DRY_RUN_SHOWN} most overdue; expire nothing",
        )

    def handle(self, *args: Any, batch_size: int, dry_run: bool, **options: Any) -> None:
        now = timezone.now()
        total = overdue_count(now=now)
        self.stdout.write(f"{total} overdue order(s) found.")
        if dry_run:
            for order_id, expires_at in overdue_first(now=now, limit=DRY_RUN_SHOWN):
                overdue = duration_display((now - expires_at).total_seconds())
                self.stdout.write(f"  order {order_id}: payment deadline {expires_at.isoformat()}, {overdue} ago")
            if total > DRY_RUN_SHOWN:
                self.stdout.write(f"  ... and {total - DRY_RUN_SHOWN} more")
            self.stdout.write("Dry run: nothing was expired.")
            return
        started = time.monotonic()

        def progress(expired: int) -> None:
            self.stdout.write(f"  expired {expired}/{max(total, expired)}", ending="\n")
            self.stdout.flush()

        expired = order_expire_overdue(batch_size=batch_size, progress=progress)
        elapsed = time.monotonic() - started
        rate = expired / elapsed if elapsed > 0 else 0.0
        self.stdout.write(self.style.SUCCESS(f"Expired {expired} order(s) in {elapsed:.1f}s ({rate:.0f} orders/s)."))
