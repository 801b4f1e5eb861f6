"""One reservation task reserves a batch of pending orders, each all or nothing."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, transaction

from core.models import OutboxMessage
from inventory.models import Product, StockLedgerEntry
from inventory.selectors import stock_discrepancies
from inventory.services import stock_adjust
from notifications.models import EmailNotification
from notifications.services.publishing import EMAIL_BATCH_TASK, FAN_OUT_TASK
from orders.lock_objects import reservation_turn_wait
from orders.models import Order, OrderStatus
from orders.services import order_reserve
from orders.services.reservation import RESERVE_BATCH_SIZE, RESERVE_TASK
from tests.factories import make_order, make_product
from tests.processes import wait_until

pytestmark = pytest.mark.django_db


def statuses() -> dict[int, str]:
    return dict(Order.objects.values_list("pk", "status"))


def waiting_for_an_advisory_lock() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND wait_event = 'advisory'"
        )
        (count,) = cursor.fetchone()
    return int(count)


def test_one_task_reserves_the_pending_orders_each_all_or_nothing():
    # given four pending orders, and then two units of the scarce product written off
    scarce, other = make_product(stock=5), make_product(stock=2)
    first = make_order(lines=[(scarce, 2)])
    too_many = make_order(lines=[(scarce, 2), (other, 1)])  # its second line could be served
    third = make_order(lines=[(other, 1)])
    fourth = make_order(lines=[(scarce, 1)])
    stock_adjust(product=scarce, delta=-2, reason="damaged")

    # when the first order's task runs
    assert order_reserve(order_id=first.pk) == OrderStatus.RESERVED

    # then every order was decided in the one batch, oldest first: the one that cannot be served
    # in full took nothing, and the later ones got what it left
    assert statuses() == {
        first.pk: "reserved",
        too_many.pk: "rejected",
        third.pk: "reserved",
        fourth.pk: "reserved",
    }
    assert dict(Product.objects.values_list("pk", "available")) == {scarce.pk: 0, other.pk: 1}
    reservations = StockLedgerEntry.objects.filter(kind="reservation")
    assert sorted(reservations.values_list("order_id", "product_id", "delta")) == sorted(
        [(first.pk, scarce.pk, -2), (third.pk, other.pk, -1), (fourth.pk, scarce.pk, -1)]
    )
    assert stock_discrepancies() == []
    assert Product.objects.filter(claimed__gt=0).count() == 0  # every claim given back
    rejected = Order.objects.get(pk=too_many.pk).events.get(to_status="rejected")
    assert rejected.data == {"lines": [{"sku": scarce.sku, "quantity": 2, "reason": "insufficient_stock"}]}


def test_the_tasks_of_orders_a_batch_took_change_nothing(django_assert_num_queries):
    product = make_product(stock=10)
    orders = [make_order(lines=[(product, 1)]) for _ in range(3)]
    order_reserve(order_id=orders[0].pk)
    ledger = list(StockLedgerEntry.objects.order_by("pk").values_list("pk", flat=True))

    # every task delivered (again): its turn, its order and the pending read, and no write (the
    # test's transaction makes the task's a savepoint: two statements more)
    for order in orders:
        with django_assert_num_queries(5):
            assert order_reserve(order_id=order.pk) == OrderStatus.RESERVED

    assert list(StockLedgerEntry.objects.order_by("pk").values_list("pk", flat=True)) == ledger
    assert Product.objects.get(pk=product.pk).available == 7


def test_a_batch_is_bounded():
    product = make_product(stock=1000)
    orders = [make_order(lines=[(product, 1)]) for _ in range(RESERVE_BATCH_SIZE + 5)]

    order_reserve(order_id=orders[-1].pk)

    # the task's own order and the oldest others, up to the batch size
    assert Order.objects.filter(status="reserved").count() == RESERVE_BATCH_SIZE
    assert Order.objects.get(pk=orders[-1].pk).status == "reserved"
    # and the oldest order left pending gets a task, whose batch takes the rest
    left = orders[RESERVE_BATCH_SIZE - 1]
    assert Order.objects.get(pk=left.pk).status == "pending"
    assert OutboxMessage.objects.filter(task_name=RESERVE_TASK, args=[left.pk]).count() == 2  # its own, and this
    # one that starts at once: its orders are waiting already
    assert OutboxMessage.objects.filter(task_name=RESERVE_TASK, args=[left.pk], kwargs={"gather": False}).exists()
    order_reserve(order_id=left.pk)
    assert set(statuses().values()) == {"reserved"}


def test_a_full_batch_writes_its_emails_itself():
    product = make_product(stock=1000)
    orders = [make_order(lines=[(product, 1)]) for _ in range(RESERVE_BATCH_SIZE)]

    order_reserve(order_id=orders[0].pk)

    # one e-mail per reserved order, queued for sending by the batch's own transaction: no
    # fan-out task in between (no webhook endpoint subscribes)
    emails = EmailNotification.objects.filter(event__event_type="order.reserved")
    assert sorted(emails.values_list("recipient", flat=True)) == sorted(o.email for o in orders)
    assert not OutboxMessage.objects.filter(task_name=FAN_OUT_TASK).exists()
    queued = [email_id for m in OutboxMessage.objects.filter(task_name=EMAIL_BATCH_TASK) for email_id in m.args[0]]
    assert sorted(queued) == sorted(emails.values_list("pk", flat=True))


@pytest.mark.django_db(transaction=True)
def test_one_batch_runs_at_a_time_and_the_next_takes_what_arrived_meanwhile():
    # given a batch under way (its turn held by another connection), and orders placed meanwhile
    product = make_product(stock=10)
    orders = [make_order(lines=[(product, 1)]) for _ in range(3)]
    turn_taken, batch_done = threading.Event(), threading.Event()

    def running_batch():
        try:
            with transaction.atomic():
                reservation_turn_wait()
                turn_taken.set()
                batch_done.wait(timeout=30)
        finally:
            connection.close()

    holder = threading.Thread(target=running_batch)
    holder.start()
    assert turn_taken.wait(timeout=10)
    results = []

    def task():
        try:
            results.append(order_reserve(order_id=orders[1].pk))
        finally:
            connection.close()

    # when an order's task runs, it waits for its turn, having changed nothing
    waiting = threading.Thread(target=task)
    waiting.start()
    wait_until(lambda: waiting_for_an_advisory_lock() == 1, timeout=10, message="the task waiting for its turn")
    assert set(statuses().values()) == {"pending"}

    # then, the running batch over, it reserves every order pending, in one batch
    batch_done.set()
    holder.join(timeout=10)
    waiting.join(timeout=10)
    assert results == [OrderStatus.RESERVED]
    assert set(statuses().values()) == {"reserved"}
