"""The one invariant checker: every invariant of the design, checked after every fault.

``invariant_report`` reads the database, the dead-letter queues and the mailbox of the system it
runs in and returns what it found: the violations (an empty list when all hold) and the figures
the scenarios report. Scenarios against a private PostgreSQL and RabbitMQ run it in a child
process with that system's environment::

    python -m tests.reliability.invariants EXPECTATIONS.json

which prints the report as JSON (see :func:`tests.reliability.stack.Stack.invariant_report`).

Invariants:

1. No stock below zero.
2. The ledger balances: every product's stock equals the sum of its ledger, and its claims equal
   the units its pending orders ask for.
3. No accepted order lost: every order the API answered 202 for exists, whole (its lines, a
   total equal to them, its first event, its reservation task in the outbox).
4. Every order is final, or still progressing: pending with its reservation task in the outbox,
   or reserved with a payment deadline, or paid or shipped (waiting for staff).
5. Stock follows the state: an order holding stock has one reservation row per line for its
   quantity and no release; an order that gave it back has both; one that never held it, neither.
6. No duplicated effect: one event per transition of an order, one notification event per order
   and event type, one delivery per event and endpoint, each e-mail in the mailbox once, each
   webhook event answered 2xx by the merchant once. The one exception is a send cut off by a
   ``kill -9`` between the request and its record: at least once is all that can be promised to
   the outside, so the scenario that kills lists those (a bounded few) and they went out with the
   same webhook-id and Message-ID, for the receiver to drop the copy.
7. Dead letters are accounted for: the dead-letter queues hold exactly the expected messages,
   each once.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FINAL_STATES = {"rejected", "cancelled", "expired", "refunded", "completed"}
HOLDING_STOCK = {"reserved", "paid", "shipped", "completed"}
GAVE_STOCK_BACK = {"expired", "refunded"}
NEVER_HELD_STOCK = {"pending", "rejected"}
RESERVE_TASK = "orders.tasks.order_reserve_task"
# At most this many examples of one kind of violation are listed.
EXAMPLES = 5


@dataclass
class Expectations:
    accepted_order_ids: list[int] = field(default_factory=list)
    dead_letter_ids: list[str] = field(default_factory=list)
    # webhook-id -> how many times the merchant answered it 2xx (None: no receiver to ask)
    webhook_successes: dict[str, int] | None = None
    # Webhook ids / e-mail Message-IDs a crash was seen to send twice (see ``allowed_resends``).
    allowed_resends: list[str] = field(default_factory=list)


def _violation(violations: list[str], what: str, examples: list[Any]) -> None:
    if examples:
        violations.append(f"{what}: {len(examples)} ({examples[:EXAMPLES]})")


def _mailbox_message_ids(mailbox: Path) -> tuple[Counter[str], dict[str, str]]:
    """Message-IDs of every e-mail Django's file-based backend wrote to ``mailbox``, counted, and
    the file each was first written to. The backend writes one file per connection, so an e-mail
    batch (one connection) is one file, and e-mails resent because their batch was cut short all
    point back to that batch's file."""
    ids: Counter[str] = Counter()
    first_file: dict[str, str] = {}
    for path in sorted(mailbox.glob("*.log"), key=lambda p: (p.stat().st_mtime_ns, p.name)):
        found = re.findall(r"^Message-ID: (<[^>]+>)", path.read_text(errors="replace"), flags=re.MULTILINE)
        ids.update(found)
        for message_id in found:
            first_file.setdefault(message_id, path.name)
    return ids, first_file


def invariant_report(expect: Expectations) -> dict[str, Any]:
    from django.conf import settings
    from django.db.models import Count, Q, Sum

    from core.dead_letters import dead_letter_list
    from core.models import OutboxMessage
    from inventory.models import Product, StockLedgerEntry
    from inventory.selectors import stock_discrepancies
    from notifications.models import EmailNotification, NotificationEvent, WebhookDelivery
    from orders.models import Order, OrderEvent
    from orders.selectors import stock_claim_discrepancies

    violations: list[str] = []

    # 1. and 2.
    _violation(violations, "stock below zero", list(Product.objects.filter(available__lt=0).values_list("sku")))
    _violation(violations, "stock differs from its ledger (sku, available, ledger)", stock_discrepancies())
    _violation(violations, "claims differ from pending orders (sku, claimed, pending)", stock_claim_discrepancies())

    # 3. Accepted orders exist, whole.
    orders = {o["pk"]: o for o in Order.objects.values("pk", "status", "total", "expires_at")}
    _violation(violations, "accepted orders missing", sorted(set(expect.accepted_order_ids) - set(orders)))
    lines: dict[int, dict[int, int]] = defaultdict(dict)  # order -> product -> quantity
    line_totals: dict[int, Any] = defaultdict(int)
    from orders.models import OrderLine

    for order_id, product_id, quantity, unit_price in OrderLine.objects.values_list(
        "order_id", "product_id", "quantity", "unit_price"
    ):
        lines[order_id][product_id] = quantity
        line_totals[order_id] += quantity * unit_price
    _violation(violations, "orders without lines", sorted(set(orders) - set(lines)))
    _violation(
        violations,
        "orders whose total is not their lines'",
        [pk for pk, o in orders.items() if o["total"] != line_totals[pk]],
    )
    first_events = set(
        OrderEvent.objects.filter(kind="transition", from_status="", to_status="pending").values_list(
            "order_id", flat=True
        )
    )
    _violation(violations, "orders without their first event", sorted(set(orders) - first_events))
    outbox = {
        args[0]: published
        for args, published in OutboxMessage.objects.filter(task_name=RESERVE_TASK).values_list("args", "published_at")
    }
    _violation(violations, "orders without their reservation task", sorted(set(orders) - set(outbox)))

    # 4. Final or progressing.
    stuck = [
        (pk, o["status"])
        for pk, o in orders.items()
        if o["status"] not in FINAL_STATES
        and not (o["status"] == "pending" and pk in outbox)
        and not (o["status"] == "reserved" and o["expires_at"] is not None)
        and o["status"] not in ("paid", "shipped")
    ]
    _violation(violations, "orders neither final nor progressing", stuck)

    # 5. Stock follows the state. (order, product, kind) -> [rows, units]
    ledger: dict[tuple[int | None, int, str], list[int]] = {}
    for row in (
        StockLedgerEntry.objects.filter(order_id__isnull=False)
        .values("order_id", "product_id", "kind")
        .annotate(rows=Count("pk"), units=Sum("delta"))
    ):
        ledger[(row["order_id"], row["product_id"], row["kind"])] = [row["rows"], row["units"]]
    wrong_stock = []
    for pk, order in orders.items():
        status = order["status"]
        for product_id, quantity in lines[pk].items():
            reserved = ledger.get((pk, product_id, "reservation"), [0, 0])
            released = ledger.get((pk, product_id, "release"), [0, 0])
            held = reserved == [1, -quantity] and released == [0, 0]
            returned = reserved == [1, -quantity] and released == [1, quantity]
            untouched = reserved == released == [0, 0]
            expected = (
                held
                if status in HOLDING_STOCK
                else returned
                if status in GAVE_STOCK_BACK
                else untouched
                if status in NEVER_HELD_STOCK
                else (returned or untouched)  # cancelled: before or after its reservation
            )
            if not expected:
                wrong_stock.append((pk, status, product_id, reserved, released))
    _violation(
        violations, "stock not following the order's state (order, status, product, reserved, released)", wrong_stock
    )
    orphans = sorted({order_id for order_id, _, _ in ledger if order_id is not None} - set(orders))
    _violation(violations, "ledger rows of unknown orders", orphans)

    # 6. No duplicated effect.
    _violation(
        violations,
        "transitions recorded twice (order, to)",
        list(
            OrderEvent.objects.filter(kind="transition")
            .values_list("order_id", "to_status")
            .annotate(n=Count("pk"))
            .filter(n__gt=1)
            .values_list("order_id", "to_status")
        ),
    )
    notification_events = Counter(
        (payload.get("id"), event_type)
        for payload, event_type in NotificationEvent.objects.values_list("payload", "event_type")
    )
    _violation(
        violations, "notification events twice (order, type)", [k for k, n in notification_events.items() if n > 1]
    )
    _violation(
        violations,
        "webhook deliveries twice (event, endpoint)",
        list(
            WebhookDelivery.objects.values_list("event_id", "endpoint_id")
            .annotate(n=Count("pk"))
            .filter(n__gt=1)
            .values_list("event_id", "endpoint_id")
        ),
    )
    emails_sent = EmailNotification.objects.filter(status=EmailNotification.Status.SENT).count()
    mailbox = getattr(settings, "EMAIL_FILE_PATH", None)
    mailed, first_file = _mailbox_message_ids(Path(mailbox)) if mailbox else (Counter(), {})
    if mailbox:
        _violation(
            violations,
            "e-mails sent twice (Message-ID)",
            [k for k, n in mailed.items() if n > 1 and k not in expect.allowed_resends],
        )
        if len(mailed) != emails_sent:
            violations.append(f"{emails_sent} e-mails marked sent, {len(mailed)} in the mailbox")
    deliveries_succeeded = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.SUCCEEDED).count()
    if expect.webhook_successes is not None:
        _violation(
            violations,
            "webhook events answered 2xx twice",
            [k for k, n in expect.webhook_successes.items() if n > 1 and k not in expect.allowed_resends],
        )
        events_succeeded = WebhookDelivery.objects.filter(status=WebhookDelivery.Status.SUCCEEDED).values("event_id")
        if len(expect.webhook_successes) != events_succeeded.count():
            violations.append(
                f"{events_succeeded.count()} deliveries succeeded, {len(expect.webhook_successes)} events received"
            )

    # 7. Dead letters accounted for.
    letters = dead_letter_list()
    letter_ids = Counter(letter.id for letter in letters)
    _violation(violations, "dead letters held twice", [k for k, n in letter_ids.items() if n > 1])
    _violation(violations, "unexpected dead letters", sorted(set(letter_ids) - set(expect.dead_letter_ids)))
    _violation(violations, "expected dead letters missing", sorted(set(expect.dead_letter_ids) - set(letter_ids)))

    statuses = Counter(o["status"] for o in orders.values())
    resent_webhooks = [k for k, n in (expect.webhook_successes or {}).items() if n > 1]
    resent_emails = [k for k, n in mailed.items() if n > 1]
    figures = {
        "resent after a crash": sorted(resent_webhooks + resent_emails),
        # What each resend repeats: an e-mail, the batch (mailbox file) it was first sent in; a
        # webhook event, itself (deliveries are sent one per task).
        "first sent in": {k: k for k in resent_webhooks} | {k: first_file[k] for k in resent_emails},
        "orders": len(orders),
        "accepted": len(expect.accepted_order_ids),
        "statuses": dict(sorted(statuses.items())),
        "ledger rows": dict(
            StockLedgerEntry.objects.values_list("kind")
            .annotate(n=Count("pk"))
            .order_by("kind")
            .values_list("kind", "n")
        ),
        "transitions": OrderEvent.objects.filter(kind="transition").count(),
        "notification events": len(notification_events),
        "e-mails sent": emails_sent,
        "webhook deliveries succeeded": deliveries_succeeded,
        "outbox rows": OutboxMessage.objects.count(),
        "outbox unpublished": OutboxMessage.objects.filter(published_at__isnull=True).count(),
        "dead letters": len(letters),
        "stock": dict(Product.objects.values_list("sku", "available")),
        "notifications in progress": EmailNotification.objects.filter(
            Q(status=EmailNotification.Status.PENDING) | Q(status=EmailNotification.Status.FAILED)
        ).count()
        + WebhookDelivery.objects.filter(
            Q(status=WebhookDelivery.Status.PENDING) | Q(status=WebhookDelivery.Status.FAILED)
        ).count(),
    }
    return {"violations": violations, "figures": figures}


def main(argv: list[str]) -> int:
    import django

    django.setup()
    expect = Expectations(**json.loads(Path(argv[1]).read_text())) if len(argv) > 1 else Expectations()
    report = invariant_report(expect)
    sys.stdout.write(json.dumps(report, default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
