"""One reservation task reserves a batch of pending orders, each all or nothing."""

from __future__ import annotations

import pytest

from inventory.models import Product, StockLedgerEntry
from inventory.selectors import stock_discrepancies
from inventory.services import stock_adjust
from orders.models import Order, OrderStatus
from orders.services import order_reserve
from orders.services.reservation import RESERVE_BATCH_SIZE
from tests.factories import make_order, make_product

pytestmark = pytest.mark.django_db


def statuses() -> dict[int, str]:
    return dict(Order.objects.values_list("pk", "status"))


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

    for order in orders:  # every task delivered (again): one plain read each, no lock
        with django_assert_num_queries(1):
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
