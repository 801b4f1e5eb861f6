"""``order_get``: the order and its lines in one query, visible only to its owner and staff."""

from __future__ import annotations

import pytest

from orders.models import Order, OrderLine
from orders.selectors import OrderNotFound, order_get
from tests.factories import StaffFactory, UserFactory, make_order, make_product

pytestmark = pytest.mark.django_db


def test_the_order_comes_with_its_lines_in_the_order_they_were_placed(django_assert_num_queries):
    customer = UserFactory()
    products = [make_product(stock=10) for _ in range(3)]
    placed = make_order(customer=customer, lines=[(product, 1) for product in reversed(products)])

    with django_assert_num_queries(1):
        order = order_get(user=customer, order_id=placed.pk)
        skus = [line.sku for line in order.lines.all()]

    assert order.pk == placed.pk
    assert skus == [product.sku for product in reversed(products)]
    assert all(line.order is order for line in order.lines.all())


def test_another_customers_order_is_not_found_and_staff_see_it():
    order = make_order(customer=UserFactory(), lines=[(make_product(stock=10), 1)])

    with pytest.raises(OrderNotFound):
        order_get(user=UserFactory(), order_id=order.pk)
    assert order_get(user=StaffFactory(), order_id=order.pk).pk == order.pk


def test_an_order_without_lines_is_still_found_and_an_unknown_one_is_not():
    # given an order whose lines are gone (orders are placed with lines; this guards the fallback)
    customer = UserFactory()
    order = make_order(customer=customer, lines=[(make_product(stock=10), 1)])
    OrderLine.objects.filter(order=order).delete()

    found = order_get(user=customer, order_id=order.pk)

    assert found.pk == order.pk
    assert list(found.lines.all()) == []
    with pytest.raises(OrderNotFound):
        order_get(user=customer, order_id=Order.objects.order_by("-pk").values_list("pk", flat=True)[0] + 1)
    with pytest.raises(OrderNotFound):
        order_get(user=UserFactory(), order_id=order.pk)
