"""Every effect happens once: a task body run twice for the same message leaves one effect.

Delivery is at least once (the relay publishes again what it could not mark, RabbitMQ redelivers
after a crash), so running the same message again must change nothing.
"""

from datetime import timedelta

import pytest
from django.db import transaction

from core.models import OutboxMessage
from core.outbox import outbox_relay
from inventory.models import StockLedgerEntry
from inventory.services import stock_release
from orders.models import OrderEvent, OrderStatus
from orders.tasks import order_reserve_task
from tests.factories import make_product
from tests.flows.support import (
    assert_stock_reconciles,
    available,
    pending_orders,
    transitions,
    user_with_token,
)
from tests.processes import wait_until

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]

RESERVE_TASK = "orders.tasks.order_reserve_task"


def release(order_id):
    """Return the order's reserved stock, in a transaction of its own, as a releasing transition does."""
    with transaction.atomic():
        return stock_release(order_ids=[order_id], reason="order cancelled")


def ledger_rows(order_id):
    return list(
        StockLedgerEntry.objects.filter(order_id=order_id).order_by("pk").values_list("pk", "kind", "delta", "product")
    )


@pytest.mark.parametrize(
    ("stock", "outcome", "left"),
    [(10, OrderStatus.RESERVED, 7), (2, OrderStatus.REJECTED, 2)],
    ids=["reserved", "rejected"],
)
def test_the_reservation_task_run_twice_for_one_order_has_one_effect(stock, outcome, left):
    # given a pending order for 3 units
    product = make_product("REDO-1", stock=stock)
    customer, _ = user_with_token("redo")
    [order_id] = pending_orders(customer=customer, product=product, count=1, quantity=3)

    # when the task body runs twice for it, as a redelivered message would make it
    first = order_reserve_task.run(order_id)
    second = order_reserve_task(order_id)

    # then both runs report the same outcome, and it happened once
    assert first == second == outcome
    assert OrderEvent.objects.filter(order_id=order_id, to_status=outcome).count() == 1
    expected_rows = 1 if outcome == OrderStatus.RESERVED else 0
    assert StockLedgerEntry.objects.filter(order_id=order_id).count() == expected_rows
    assert available(product) == left
    assert_stock_reconciles()


def test_a_reservation_message_published_again_through_the_broker_changes_nothing(live_worker, customer_api):
    # given an order the worker has reserved, from its outbox message
    product = make_product("REDO-2", stock=10)
    response = customer_api.place_order([{"sku": "REDO-2", "quantity": 2}])
    assert response.status_code == 202, response.text
    order = customer_api.wait_for_status(response.headers["Location"])
    assert order["status"] == "reserved"
    message = OutboxMessage.objects.get(task_name=RESERVE_TASK, args=[order["id"]])
    assert message.published_at is not None
    wait_until(lambda: live_worker.runs(RESERVE_TASK, str(message.pk)) == 1, timeout=10, message="the first run")
    rows_before = ledger_rows(order["id"])
    events_before = customer_api.events(order["id"])

    # when the relay publishes the same message again (as after a crash before it was marked)
    OutboxMessage.objects.filter(pk=message.pk).update(published_at=None)
    assert outbox_relay(grace=timedelta(0)) == 1

    # then the worker runs it a second time, with the same task id
    wait_until(lambda: live_worker.runs(RESERVE_TASK, str(message.pk)) == 2, timeout=30, message="the second run")

    # and the ledger, the events and the stock are what they were
    assert ledger_rows(order["id"]) == rows_before
    assert customer_api.events(order["id"]) == events_before
    assert customer_api.order(order["id"])["status"] == "reserved"
    assert available(product) == 8
    assert_stock_reconciles()


def test_a_release_run_twice_returns_the_stock_once():
    # given an order that reserved 3 of 10 units
    product = make_product("REDO-3", stock=10)
    customer, _ = user_with_token("release")
    [order_id] = pending_orders(customer=customer, product=product, count=1, quantity=3)
    assert order_reserve_task(order_id) == OrderStatus.RESERVED

    # when its stock is released twice
    first = release(order_id)
    second = release(order_id)

    # then the units come back once
    assert (first, second) == (3, 0)
    assert StockLedgerEntry.objects.filter(order_id=order_id, kind=StockLedgerEntry.Kind.RELEASE).count() == 1
    assert available(product) == 10
    assert_stock_reconciles()


def test_a_cancelled_order_released_again_keeps_its_stock_once(live_worker, customer_api):
    # given a reserved order for 4 of 10 units, cancelled over HTTP
    product = make_product("REDO-4", stock=10)
    response = customer_api.place_order([{"sku": "REDO-4", "quantity": 4}])
    order = customer_api.wait_for_status(response.headers["Location"])
    assert customer_api.act(order["id"], "cancel").status_code == 200
    assert available(product) == 10

    # when its release runs again, as a repeated cancellation's release would
    released = release(order["id"])

    # then nothing more comes back, and the order was cancelled once
    assert released == 0
    assert StockLedgerEntry.objects.filter(order_id=order["id"], kind=StockLedgerEntry.Kind.RELEASE).count() == 1
    assert available(product) == 10
    assert transitions(customer_api.events(order["id"]))[-1] == ("reserved", "cancelled", "customer")
    assert_stock_reconciles()
