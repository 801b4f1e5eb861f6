"""ORDER_MAX_OPEN_PER_CUSTOMER: a customer holds at most that many pending or reserved orders;
one more is 409 too_many_open_orders and writes nothing, under any concurrency."""

from __future__ import annotations

import threading

import pytest
from django.db import connection
from django.test import override_settings

from inventory.models import Product
from orders.models import Actor, Order, OrderStatus
from orders.services import OrderItem, TooManyOpenOrders, order_cancel, order_place
from tests.factories import UserFactory, make_product

CAP = 3


@pytest.mark.django_db
@override_settings(ORDER_MAX_OPEN_PER_CUSTOMER=CAP)
def test_the_order_past_the_cap_is_a_409_and_writes_nothing(client_for):
    # given a customer with CAP open orders
    customer = UserFactory.create()
    product = make_product(stock=100)
    client = client_for(customer)
    body = {"items": [{"sku": product.sku, "quantity": 1}]}
    for _ in range(CAP):
        assert client.post("/api/v1/orders/", body, format="json").status_code == 202

    # when they place one more
    response = client.post("/api/v1/orders/", body, format="json")

    # then it is refused, and nothing was written or claimed
    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == "too_many_open_orders"
    assert Order.objects.filter(customer=customer).count() == CAP
    assert Product.objects.get(pk=product.pk).claimed == CAP


@pytest.mark.django_db
@override_settings(ORDER_MAX_OPEN_PER_CUSTOMER=CAP)
def test_closing_an_order_makes_room_and_other_customers_are_not_counted():
    customer, other = UserFactory.create(), UserFactory.create()
    product = make_product(stock=100)
    items = [OrderItem(sku=product.sku, quantity=1)]
    orders = [order_place(customer=customer, email=None, items=items) for _ in range(CAP)]

    order_place(customer=other, email=None, items=items)  # another customer's cap is their own
    with pytest.raises(TooManyOpenOrders):
        order_place(customer=customer, email=None, items=items)
    order_cancel(order_id=orders[0].pk, actor=Actor.CUSTOMER, actor_user=customer)

    assert order_place(customer=customer, email=None, items=items).status == OrderStatus.PENDING


@pytest.mark.django_db
@override_settings(ORDER_MAX_OPEN_PER_CUSTOMER=None)
def test_no_cap_when_the_setting_is_empty():
    customer = UserFactory.create()
    product = make_product(stock=100)
    for _ in range(CAP + 2):
        order_place(customer=customer, email=None, items=[OrderItem(sku=product.sku, quantity=1)])

    assert Order.objects.filter(customer=customer).count() == CAP + 2


@pytest.mark.django_db(transaction=True)
@override_settings(ORDER_MAX_OPEN_PER_CUSTOMER=CAP)
def test_concurrent_orders_at_the_cap_let_exactly_one_through():
    # given customers one order short of the cap, each sending several orders at once
    product = make_product(stock=10_000)
    items = [OrderItem(sku=product.sku, quantity=1)]
    rounds, racers = 5, 4
    customers = [UserFactory.create() for _ in range(rounds)]
    for customer in customers:
        for _ in range(CAP - 1):
            order_place(customer=customer, email=None, items=items)
    outcomes: list[str] = []

    def place(customer, start: threading.Barrier) -> None:
        start.wait()
        try:
            order_place(customer=customer, email=None, items=items)
            outcomes.append("placed")
        except TooManyOpenOrders:
            outcomes.append("refused")
        finally:
            connection.close()

    # when each customer's racers start together
    for customer in customers:
        start = threading.Barrier(racers)
        threads = [threading.Thread(target=place, args=(customer, start)) for _ in range(racers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

    # then each customer ends at exactly the cap
    for customer in customers:
        assert Order.objects.filter(customer=customer).count() == CAP
    assert outcomes.count("placed") == rounds
    assert outcomes.count("refused") == rounds * (racers - 1)
