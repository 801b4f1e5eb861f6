"""No oversell: many buyers race for the last units of one SKU, and exactly the stock is sold.

Two harnesses. Over HTTP, 200 buyers hit a real gunicorn at once and two worker processes
reserve in parallel. At the service level, 200 threads call ``order_reserve`` directly, so the
reservations race inside PostgreSQL; the same harness run against a deliberately naive
read-modify-write reservation oversells, which shows the harness can catch the bug at all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
from django.db import connection, transaction

from core.models import OutboxMessage
from inventory.models import Product, StockLedgerEntry
from notifications.models import EmailNotification
from orders.models import Order, OrderLine, OrderStatus
from orders.services import OrderItem, order_place, order_reserve
from orders.services.placement import PLACE_FUNCTION
from tests.factories import make_product
from tests.flows.support import (
    Api,
    assert_sold_out_exactly,
    assert_stock_reconciles,
    customers_with_tokens,
    pending_orders,
    stock_outcome,
    user_with_token,
)
from tests.processes import wait_until

logger = logging.getLogger(__name__)

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]

RESERVE_TASK = "orders.tasks.order_reserve_task"
BUYERS = 200
STOCK = 50
# PostgreSQL on this machine serves other test runs too (max_connections 100): at most this many
# of the service-level racers hold a connection at once. Still far more than the stock row can
# serve at a time, so the reservations really contend.
MAX_DB_CONNECTIONS = 24
# How long the naive reservation waits between reading the stock and writing it back: wide
# enough that concurrent buyers reliably read the same value.
NAIVE_RACE_WINDOW_SECONDS = 0.02


def run_concurrently(action: Callable[[int], object], args: list[int], *, limit: int | None = None) -> list[object]:
    """Run ``action(arg)`` for every arg in its own thread, all released at once; returns the results.

    ``limit`` bounds how many run at the same time (each holds a database connection).
    """
    barrier = threading.Barrier(len(args))
    gate = threading.BoundedSemaphore(limit or len(args))
    results: list[object] = [None] * len(args)

    def run(index: int, arg: int) -> None:
        barrier.wait()
        with gate:
            try:
                results[index] = action(arg)
            except Exception as exc:  # an error is a result the test asserts on
                results[index] = exc
            finally:
                connection.close()  # each thread has its own; do not leave them open

    threads = [threading.Thread(target=run, args=(i, arg)) for i, arg in enumerate(args)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
        assert not thread.is_alive(), "a racer did not finish in 120s"
    return results


def test_200_buyers_over_http_get_exactly_the_50_units_in_stock(live_web, live_worker, process_factory):
    # given 50 units of one SKU, 200 customers, and two worker processes of two slots each
    product = make_product("RUSH-HTTP", stock=STOCK)
    tokens = customers_with_tokens(BUYERS)
    second_worker = process_factory.worker(name="w2", concurrency=2)

    # when every customer orders one unit at the same moment, over HTTP
    client = httpx.Client(timeout=60, limits=httpx.Limits(max_connections=BUYERS))
    apis = [Api(live_web.base_url, token, client=client) for token in tokens]
    started = time.monotonic()
    responses = run_concurrently(
        lambda i: apis[i].place_order([{"sku": "RUSH-HTTP", "quantity": 1}]), list(range(BUYERS))
    )
    accepted_in = time.monotonic() - started
    client.close()

    # then every customer is answered: accepted, or refused at once as sold out (once the
    # accepted orders have claimed the stock, later orders are turned away without being created)
    answers = Counter(getattr(r, "status_code", repr(r)) for r in responses)
    assert set(answers) <= {202, 409}, answers
    assert all(r.json()["errors"][0]["code"] == "sold_out" for r in responses if r.status_code == 409)
    # exactly the stock is accepted: a claim takes only unclaimed stock, under the product's lock
    accepted = answers[202]
    assert accepted == STOCK, answers
    assert Order.objects.filter(lines__product=product).count() == accepted

    # and once the workers are done, exactly those 50 are reserved and none rejected
    wait_until(
        lambda: not Order.objects.filter(status=OrderStatus.PENDING).exists(),
        timeout=90,
        message="every order to leave pending",
    )
    settled_in = time.monotonic() - started
    outcome = stock_outcome(product, stock=STOCK)
    logger.info(
        "%d orders accepted, %d refused, in %.2fs, settled in %.2fs; reservations run by w1: %d, w2: %d; %s",
        accepted, BUYERS - accepted, accepted_in, settled_in,
        live_worker.runs(RESERVE_TASK), second_worker.runs(RESERVE_TASK), outcome,
    )  # fmt: skip
    assert outcome.reserved_orders == STOCK
    assert outcome.rejected_orders == 0
    assert_sold_out_exactly(outcome)
    assert_stock_reconciles()


def test_200_concurrent_reservations_take_exactly_the_50_units_in_stock():
    # given 200 pending orders for one unit each of a SKU with 50 units
    product = make_product("RUSH-SVC", stock=STOCK)
    customer, _ = user_with_token("rusher")
    order_ids = pending_orders(customer=customer, product=product, count=BUYERS)

    # when all of them are reserved at the same time
    results = run_concurrently(lambda order_id: order_reserve(order_id=order_id), order_ids, limit=MAX_DB_CONNECTIONS)

    # then exactly 50 got their unit and the ledger agrees
    assert Counter(results) == {"reserved": STOCK, "rejected": BUYERS - STOCK}
    outcome = stock_outcome(product, stock=STOCK)
    assert_sold_out_exactly(outcome)
    assert_stock_reconciles()


def naive_order_reserve(order_id: int) -> str:
    """How not to reserve stock: read the level, check it, write back the difference.

    No lock and no condition on the write, so two buyers who read the same level both succeed
    and one decrement is lost.
    """
    with transaction.atomic():
        line = OrderLine.objects.get(order_id=order_id)
        product = Product.objects.get(pk=line.product_id)
        if product.available < line.quantity:
            Order.objects.filter(pk=order_id).update(status=OrderStatus.REJECTED)
            return "rejected"
        time.sleep(NAIVE_RACE_WINDOW_SECONDS)
        Product.objects.filter(pk=product.pk).update(available=product.available - line.quantity)
        StockLedgerEntry.objects.create(
            product=product, kind=StockLedgerEntry.Kind.RESERVATION, delta=-line.quantity, order_id=order_id
        )
        Order.objects.filter(pk=order_id).update(status=OrderStatus.RESERVED)
        return "reserved"


def test_the_race_harness_catches_a_read_modify_write_reservation():
    # given the same 200 pending orders for a SKU with 50 units
    product = make_product("RUSH-NAIVE", stock=STOCK)
    customer, _ = user_with_token("naive")
    order_ids = pending_orders(customer=customer, product=product, count=BUYERS)

    # when the same harness races a naive read-modify-write reservation
    results = run_concurrently(naive_order_reserve, order_ids, limit=MAX_DB_CONNECTIONS)

    # then it oversells: more units are reserved than were in stock, and updates were lost
    outcome = stock_outcome(product, stock=STOCK)
    logger.info("naive reservation: %s; %s", Counter(results), outcome)
    assert Counter(results)["reserved"] > STOCK, outcome
    assert outcome.reserved_units > STOCK, outcome
    assert outcome.discrepancies, outcome  # lost updates: the stock no longer matches its ledger
    # and the check the real reservation passes fails here
    with pytest.raises(AssertionError):
        assert_sold_out_exactly(outcome)


# Placements racing for the last unit after all of them have read it as available.
STALE_RACERS = 16


def placement_waits() -> int:
    """How many placing statements of this database wait for a lock. Only theirs: a worker's task
    of an earlier test may be waiting for a lock too.

    Called inside a transaction: ``pg_stat_activity`` is read once per transaction unless its
    snapshot is cleared, and would not list the connections opened since.
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted AND pid IN ("
            " SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE %s)",
            [f"%{PLACE_FUNCTION}(%"],
        )
        return int(cursor.fetchone()[0])


def test_orders_placed_on_a_stale_read_of_the_stock_claim_only_what_is_left(live_worker):
    # given 1 unit of a SKU, and 16 customers whose placements have all read it as available and
    # wait to claim it (its row is held locked meanwhile; a plain read does not wait for a lock)
    product = make_product("RUSH-CLAIM", stock=1)
    customers = [user_with_token(f"claimer{i}")[0] for i in range(STALE_RACERS)]
    results: list[object] = []

    def place(index: int) -> object:
        return order_place(customer=customers[index], email=None, items=[OrderItem(sku=product.sku, quantity=1)])

    racing = threading.Thread(target=lambda: results.extend(run_concurrently(place, list(range(STALE_RACERS)))))
    with transaction.atomic():
        Product.objects.select_for_update(no_key=True).get(pk=product.pk)
        racing.start()
        wait_until(lambda: placement_waits() == STALE_RACERS, timeout=60, message="every placement to wait")

    # when the lock is let go, they claim one after the other
    racing.join(timeout=120)

    # then one order is accepted and every other one refused as sold out, with nothing written
    assert Counter(type(result).__name__ for result in results) == {"Order": 1, "SoldOut": STALE_RACERS - 1}
    assert Order.objects.filter(lines__product=product).count() == 1
    # (its unit claimed while it is pending, taken from the stock once the worker has reserved it)
    product.refresh_from_db()
    assert (product.available, product.claimed) in {(1, 1), (0, 0)}, (product.available, product.claimed)
    # and the worker reserves the accepted one (waited for, with its e-mail: nothing may still be
    # writing when the test database is emptied)
    wait_until(
        lambda: (
            Order.objects.filter(lines__product=product, status=OrderStatus.RESERVED).exists()
            and not OutboxMessage.objects.filter(published_at__isnull=True).exists()
            and not EmailNotification.objects.filter(status=EmailNotification.Status.PENDING).exists()
        ),
        timeout=60,
        message="the accepted order reserved and its e-mail sent",
    )
