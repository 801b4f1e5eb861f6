"""Reading orders (``order_get``, ``order_list`` and their endpoints): the order and its lines in
one query, visible only to its owner and staff, filtered by status."""

from __future__ import annotations

import pytest

from orders.models import Order, OrderLine
from orders.selectors import OrderNotFound, order_get
from orders.services import order_reserve
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


def test_customers_see_only_their_own_orders_and_staff_see_all(customer, staff, client_for):
    # given an order of the customer's and one of someone else's
    other = UserFactory()
    product = make_product(stock=100)
    mine = make_order(customer=customer, lines=[(product, 1)])
    theirs = make_order(customer=other, lines=[(product, 1)])

    # when each lists the orders
    listed = client_for(customer).get("/api/v1/orders/").json()
    staff_listed = client_for(staff).get("/api/v1/orders/").json()

    # then the customer sees only theirs, and the other's order does not exist for them
    assert [o["id"] for o in listed["results"]] == [mine.pk]
    assert {o["id"] for o in staff_listed["results"]} == {mine.pk, theirs.pk}
    assert client_for(customer).get(f"/api/v1/orders/{theirs.pk}/").status_code == 404
    assert client_for(customer).get(f"/api/v1/orders/{theirs.pk}/events/").status_code == 404
    assert client_for(staff).get(f"/api/v1/orders/{theirs.pk}/").status_code == 200


def test_orders_can_be_filtered_by_status(customer, client_for):
    # given a pending and a reserved order
    product = make_product(stock=100)
    reserved = make_order(customer=customer, lines=[(product, 1)])
    order_reserve(order_id=reserved.pk)
    pending = make_order(customer=customer, lines=[(product, 1)])  # placed after: not in the batch

    # when the reserved ones are asked for, and an unknown status
    response = client_for(customer).get("/api/v1/orders/?status=reserved")
    bad = client_for(customer).get("/api/v1/orders/?status=nonsense")

    # then only the reserved one is listed, and the unknown status is a 400
    assert [o["id"] for o in response.json()["results"]] == [reserved.pk]
    assert pending.pk not in [o["id"] for o in response.json()["results"]]
    assert bad.status_code == 400
