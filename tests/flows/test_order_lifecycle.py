"""An order's whole life over real HTTP, against gunicorn, a Celery worker, PostgreSQL and RabbitMQ.

Every scenario ends with ``manage.py reconcile_stock`` and the exact stock it must leave.
"""

from datetime import datetime, timedelta

import pytest
from django.conf import settings

from inventory.models import StockLedgerEntry
from orders.models import Order
from tests.factories import make_product
from tests.flows.support import (
    assert_stock_reconciles,
    available,
    ledger_units,
    transitions,
)

pytestmark = [pytest.mark.flow, pytest.mark.django_db(transaction=True)]

RESERVATION = StockLedgerEntry.Kind.RESERVATION
RELEASE = StockLedgerEntry.Kind.RELEASE


def place_and_wait_reserved(api, sku, quantity):
    response = api.place_order([{"sku": sku, "quantity": quantity}])
    assert response.status_code == 202, response.text
    order = api.wait_for_status(response.headers["Location"])
    assert order["status"] == "reserved", order
    return order


def pay(api, order):
    body = {"type": "payment.succeeded", "order_id": order["id"], "amount": order["total"], "currency": "USD"}
    response = api.payment_callback(body)
    assert response.status_code == 200, response.text
    assert response.json() == {"result": "applied"}


def test_an_order_is_placed_reserved_paid_shipped_and_completed(live_worker, customer_api, staff_api):
    # given a product with 10 units
    product = make_product("LIFE-1", stock=10, price="12.50")

    # when the customer places an order for 3
    response = customer_api.place_order([{"sku": "LIFE-1", "quantity": 3}])

    # then it is accepted for later processing, with the order's address
    assert response.status_code == 202, response.text
    placed = response.json()
    assert placed["status"] == "pending"
    assert placed["total"] == "37.50"
    location = response.headers["Location"]
    assert location == customer_api.url(f"orders/{placed['id']}/")

    # when the worker has reserved the stock
    order = customer_api.wait_for_status(location)

    # then the order is reserved with a payment deadline, and the stock is taken
    assert order["status"] == "reserved"
    reserved_at = datetime.fromisoformat(order["reserved_at"])
    expires_at = datetime.fromisoformat(order["expires_at"])
    assert expires_at - reserved_at == timedelta(seconds=settings.ORDER_PAYMENT_TIMEOUT_SECONDS)
    assert available(product) == 7

    # when the payment provider calls back, signed, with the order's amount
    body = {"type": "payment.succeeded", "order_id": order["id"], "amount": "37.50", "currency": "USD"}
    paid = customer_api.payment_callback(body, webhook_id="msg_lifecycle_1")
    replayed = customer_api.payment_callback(body, webhook_id="msg_lifecycle_1")

    # then the order is paid, once: the replay is acknowledged and changes nothing
    assert (paid.status_code, paid.json()) == (200, {"result": "applied"})
    assert (replayed.status_code, replayed.json()) == (200, {"result": "duplicate"})
    order = customer_api.order(order["id"])
    assert order["status"] == "paid"
    assert order["paid_at"] is not None

    # when staff ship it, then complete it
    shipped = staff_api.act(order["id"], "ship")
    completed = staff_api.act(order["id"], "complete")

    # then each step answers the order in its new state
    assert (shipped.status_code, shipped.json()["status"]) == (200, "shipped")
    assert (completed.status_code, completed.json()["status"]) == (200, "completed")

    # and the events show every transition, oldest first, with who made it
    assert transitions(customer_api.events(order["id"])) == [
        ("", "pending", "customer"),
        ("pending", "reserved", "system"),
        ("reserved", "paid", "payment_provider"),
        ("paid", "shipped", "staff"),
        ("shipped", "completed", "staff"),
    ]
    # and the sold units stay sold
    assert available(product) == 7
    assert ledger_units(product, RESERVATION, order_id=order["id"]) == -3
    assert ledger_units(product, RELEASE, order_id=order["id"]) == 0
    assert_stock_reconciles()


def test_a_cancelled_order_returns_its_stock(live_worker, customer_api):
    # given a reserved order for 4 of 10 units
    product = make_product("LIFE-2", stock=10)
    order = place_and_wait_reserved(customer_api, "LIFE-2", 4)
    assert available(product) == 6

    # when its owner cancels it, and then tries again
    cancelled = customer_api.act(order["id"], "cancel")
    again = customer_api.act(order["id"], "cancel")

    # then it is cancelled once, the second attempt is refused, and the stock is back
    assert (cancelled.status_code, cancelled.json()["status"]) == (200, "cancelled")
    assert again.status_code == 409, again.text
    assert again.json()["errors"][0]["code"] == "invalid_transition"
    assert available(product) == 10
    assert ledger_units(product, RESERVATION, order_id=order["id"]) == -4
    assert ledger_units(product, RELEASE, order_id=order["id"]) == 4
    assert transitions(customer_api.events(order["id"])) == [
        ("", "pending", "customer"),
        ("pending", "reserved", "system"),
        ("reserved", "cancelled", "customer"),
    ]
    assert_stock_reconciles()


def test_an_order_that_cannot_be_served_in_full_is_rejected_with_the_reason_per_line(
    without_shared_workers, process_factory, customer_api, staff_api
):
    # given one product with enough stock and one with just enough, and no worker running yet
    plenty = make_product("LIFE-3A", stock=5)
    scarce = make_product("LIFE-3B", stock=5)

    # when a customer orders 3 of the first and 5 of the second, and before a worker reserves
    # them the second product's stock is cut to 2
    response = customer_api.place_order([{"sku": "LIFE-3A", "quantity": 3}, {"sku": "LIFE-3B", "quantity": 5}])
    assert response.status_code == 202, response.text
    staff_api.adjust_stock("LIFE-3B", -3, "damaged")
    process_factory.worker(name="late")
    order = customer_api.wait_for_status(response.headers["Location"])

    # then the whole order is rejected, naming the line that could not be served and why
    assert order["status"] == "rejected"
    events = customer_api.events(order["id"])
    assert transitions(events) == [("", "pending", "customer"), ("pending", "rejected", "system")]
    rejection = events[-1]
    assert rejection["reason"] == "LIFE-3B: insufficient_stock"
    assert rejection["data"] == {"lines": [{"sku": "LIFE-3B", "quantity": 5, "reason": "insufficient_stock"}]}

    # and nothing was taken from either product: reservation is all or nothing
    assert (available(plenty), available(scarce)) == (5, 2)
    assert ledger_units(plenty, RESERVATION, order_id=order["id"]) == 0
    assert_stock_reconciles()


def test_an_order_for_more_than_the_stock_is_refused_at_once_and_accepted_after_a_restock(
    live_worker, customer_api, staff_api
):
    # given a product with 2 units left
    product = make_product("LIFE-4", stock=2)
    orders_before = Order.objects.count()

    # when a customer orders 3
    refused = customer_api.place_order([{"sku": "LIFE-4", "quantity": 3}])

    # then the order is refused with 409 sold_out, and nothing is created
    assert refused.status_code == 409, refused.text
    assert refused.json()["errors"][0]["code"] == "sold_out"
    assert Order.objects.count() == orders_before

    # and once the product is restocked, the same order is accepted and reserved
    staff_api.adjust_stock("LIFE-4", 1, "delivery")
    place_and_wait_reserved(customer_api, "LIFE-4", 3)
    assert available(product) == 0
    assert_stock_reconciles()


def test_a_refunded_order_returns_its_stock(live_worker, customer_api, staff_api):
    # given a paid order for 2 of 8 units
    product = make_product("LIFE-4", stock=8)
    order = place_and_wait_reserved(customer_api, "LIFE-4", 2)
    pay(customer_api, order)
    assert available(product) == 6

    # when staff refund it
    refunded = staff_api.act(order["id"], "refund")

    # then the order is refunded and its units are back on the shelf
    assert (refunded.status_code, refunded.json()["status"]) == (200, "refunded")
    assert available(product) == 8
    assert ledger_units(product, RELEASE, order_id=order["id"]) == 2
    assert transitions(staff_api.events(order["id"])) == [
        ("", "pending", "customer"),
        ("pending", "reserved", "system"),
        ("reserved", "paid", "payment_provider"),
        ("paid", "refunded", "staff"),
    ]
    assert_stock_reconciles()
