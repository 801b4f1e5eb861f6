"""Unpaid orders expire at their deadline; every race with payment ends exactly one way."""

import signal
import subprocess
import sys
import threading
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from inventory.models import Product, StockLedgerEntry
from orders.models import Order, OrderEvent, PaymentWebhookReceipt
from orders.services import order_expire_overdue, order_reserve
from orders.services.payments import payment_callback_process
from tests.factories import make_order, make_product, make_reserved_orders
from tests.payments import payment_request
from tests.processes import ROOT, wait_until


def status_counts(order_ids):
    counts: dict[str, int] = {}
    for status in Order.objects.filter(pk__in=order_ids).values_list("status", flat=True):
        counts[status] = counts.get(status, 0) + 1
    return counts


@pytest.mark.django_db
def test_an_overdue_reserved_order_expires_and_its_stock_returns():
    product = make_product(stock=10)
    overdue = make_order(lines=[(product, 3)])
    on_time = make_order(lines=[(product, 2)])
    order_reserve(order_id=overdue.pk)
    order_reserve(order_id=on_time.pk)
    Order.objects.filter(pk=overdue.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    expired = order_expire_overdue()

    assert expired == 1
    assert Order.objects.get(pk=overdue.pk).status == "expired"
    assert Order.objects.get(pk=on_time.pk).status == "reserved"
    assert Product.objects.get(pk=product.pk).available == 8
    event = OrderEvent.objects.filter(order_id=overdue.pk).last()
    assert (event.from_status, event.to_status, event.actor) == ("reserved", "expired", "system")
    call_command("reconcile_stock")


@pytest.mark.django_db
def test_paid_and_pending_orders_never_expire():
    product = make_product(stock=10)
    pending = make_order(lines=[(product, 1)])
    paid_ids = make_reserved_orders(product=product, count=1, expires_at=timezone.now() - timedelta(hours=1))
    order = Order.objects.get(pk=paid_ids[0])
    order.pay(at=timezone.now())
    order.save()

    assert order_expire_overdue() == 0
    assert status_counts([pending.pk, *paid_ids]) == {"pending": 1, "paid": 1}


@pytest.mark.django_db
def test_expire_orders_command_reports_progress(capsys):
    product = make_product(stock=300)
    make_reserved_orders(product=product, count=250, expires_at=timezone.now() - timedelta(seconds=5))

    call_command("expire_orders", batch_size=100)

    out = capsys.readouterr().out
    assert "250 overdue order(s) found." in out
    assert "expired 100/250" in out
    assert "Expired 250 order(s)" in out
    assert Product.objects.get(pk=product.pk).available == 300


@pytest.mark.django_db
def test_expire_orders_dry_run_names_the_most_overdue_and_expires_nothing(capsys):
    # given 25 overdue reserved orders, the first ten an hour overdue, and one not yet due
    product = make_product(stock=30)
    oldest = make_reserved_orders(product=product, count=10, expires_at=timezone.now() - timedelta(hours=1))
    make_reserved_orders(product=product, count=15, expires_at=timezone.now() - timedelta(seconds=5))
    make_reserved_orders(product=product, count=1, expires_at=timezone.now() + timedelta(hours=1))

    # when the sweep is tried as a dry run
    call_command("expire_orders", dry_run=True)

    # then it counts them all and names the 20 most overdue first, and nothing changed
    out = capsys.readouterr().out
    assert "25 overdue order(s) found." in out
    named = [line for line in out.splitlines() if line.startswith("  order ")]
    assert len(named) == 20
    assert {int(line.split()[1].rstrip(":")) for line in named[:10]} == set(oldest)
    assert "... and 5 more" in out and "Dry run: nothing was expired." in out
    assert status_counts(Order.objects.values_list("pk", flat=True)) == {"reserved": 26}
    assert Product.objects.get(pk=product.pk).available == 4


@pytest.mark.django_db(transaction=True)
def test_payments_racing_the_sweeper_end_paid_xor_expired_and_stock_follows():
    # given orders whose deadline is now
    product = make_product(stock=200, price="5.00")
    order_ids = make_reserved_orders(product=product, count=120, expires_at=timezone.now())
    requests = [
        payment_request({"type": "payment.succeeded", "order_id": pk, "amount": "5.00", "currency": "USD"})
        for pk in order_ids
    ]
    start = threading.Barrier(5)
    processed = []

    def pay(chunk):
        start.wait()
        try:
            for body, headers in chunk:
                payment_callback_process(body=body, headers=headers)
                processed.append(1)
        finally:
            connection.close()

    def sweep():
        start.wait()
        # let some payments through first, so that both outcomes occur while both sides run
        wait_until(lambda: len(processed) >= 20, timeout=60, interval=0.001, message="first payments")
        try:
            for _ in range(40):
                order_expire_overdue(batch_size=5)
        finally:
            connection.close()

    # when payments arrive while two sweepers run
    threads = [threading.Thread(target=pay, args=(requests[i::3],)) for i in range(3)]
    threads += [threading.Thread(target=sweep)]
    threads += [threading.Thread(target=sweep)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    order_expire_overdue()

    # then each order is paid xor expired, and stock and receipts follow the winner
    counts = status_counts(order_ids)
    assert set(counts) <= {"paid", "expired"}
    assert sum(counts.values()) == 120
    assert counts.get("paid", 0) > 0, counts
    assert counts.get("expired", 0) > 0, counts
    expired_ids = set(Order.objects.filter(pk__in=order_ids, status="expired").values_list("pk", flat=True))
    released = list(StockLedgerEntry.objects.filter(kind="release").values_list("order_id", flat=True))
    assert sorted(released) == sorted(expired_ids)
    applied = set(PaymentWebhookReceipt.objects.filter(outcome="applied").values_list("order_id", flat=True))
    assert applied == set(order_ids) - expired_ids
    not_applied = set(PaymentWebhookReceipt.objects.filter(outcome="not_applied").values_list("order_id", flat=True))
    assert not_applied == expired_ids
    assert Product.objects.get(pk=product.pk).available == 200 - counts["paid"]
    call_command("reconcile_stock")


@pytest.mark.django_db(transaction=True)
def test_two_sweepers_never_release_an_order_twice():
    product = make_product(stock=600)
    order_ids = make_reserved_orders(product=product, count=600, expires_at=timezone.now() - timedelta(seconds=1))
    results = []
    start = threading.Barrier(2)

    def sweep():
        start.wait()
        try:
            results.append(order_expire_overdue(batch_size=25))
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert sum(results) == 600
    assert all(r > 0 for r in results), results  # both really worked
    assert status_counts(order_ids) == {"expired": 600}
    assert StockLedgerEntry.objects.filter(kind="release").count() == 600
    assert OrderEvent.objects.filter(to_status="expired").count() == 600
    assert Product.objects.get(pk=product.pk).available == 600
    call_command("reconcile_stock")


@pytest.mark.django_db(transaction=True)
def test_a_sweeper_killed_mid_run_loses_nothing_and_the_next_one_finishes(service_env, tmp_path):
    # given many overdue orders
    product = make_product(stock=3000)
    order_ids = make_reserved_orders(product=product, count=3000, expires_at=timezone.now() - timedelta(seconds=1))
    log = tmp_path / "sweeper.log"

    # when a sweeper is killed with SIGKILL after its first batches
    with log.open("w") as out:
        sweeper = subprocess.Popen(
            [sys.executable, "manage.py", "expire_orders", "--batch-size", "100"],
            # no broker: the e-mails it queues stay in the outbox, away from other tests' workers
            cwd=ROOT, env={**service_env, "CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:1//"},
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_until(lambda: "expired 200/" in log.read_text(), timeout=60, message="two batches")
        sweeper.send_signal(signal.SIGKILL)
        sweeper.wait(timeout=10)

    # then what it committed is whole batches, with stock and ledger consistent
    expired_before = Order.objects.filter(pk__in=order_ids, status="expired").count()
    assert 200 <= expired_before < 3000
    assert expired_before % 100 == 0
    call_command("reconcile_stock")
    assert StockLedgerEntry.objects.filter(kind="release").count() == expired_before

    # and the next sweeper finishes the work
    assert order_expire_overdue() == 3000 - expired_before
    assert status_counts(order_ids) == {"expired": 3000}
    assert Product.objects.get(pk=product.pk).available == 3000
    call_command("reconcile_stock")
