"""Queries per API request, pinned: the count must not grow with the number of rows shown.

Each endpoint is asked twice, over a small and a larger data set, and must run exactly the
same queries both times, so an N+1 (a query per order, line, event or delivery) fails here.
The counts include authentication (one query for the token and its user). After-commit
publishing is switched off outside flow tests, so its one ``UPDATE`` is not counted.
"""

from __future__ import annotations

import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from notifications.models import WebhookDelivery
from orders.activity import activity_flush_if_due
from orders.models import Order
from orders.services import order_reserve
from tests.factories import OperatorFactory, UserFactory, make_order, make_product
from tests.notifications.factories import WebhookDeliveryFactory, WebhookEndpointFactory
from tests.payments import payment_request

pytestmark = pytest.mark.django_db

SIZES = [1, 4]


def reserved_order(customer, lines: int) -> Order:
    order = make_order(customer=customer, lines=[(make_product(stock=10), 1) for _ in range(lines)])
    order_reserve(order_id=order.pk)
    return Order.objects.get(pk=order.pk)


@pytest.mark.parametrize("size", SIZES)
def test_order_create(django_assert_num_queries, size, client_for):
    # given `size` merchant endpoints subscribed to every event and an order of `size` lines
    customer = UserFactory()
    client = client_for(customer)
    WebhookEndpointFactory.create_batch(size)
    items = [{"sku": make_product(stock=10).sku, "quantity": 1} for _ in range(size)]

    # token+user, products, then one statement (its own transaction): the claims, the order, its
    # lines, its event and its outbox row (the reservation task); the order is announced to
    # e-mail and webhooks by the worker's reservation
    with django_assert_num_queries(3):
        response = client.post("/api/v1/orders/", {"items": items}, format="json")
    assert response.status_code == 202, response.content


@override_settings(ORDER_MAX_OPEN_PER_CUSTOMER=20)  # production's default
def test_order_create_under_the_open_order_cap(django_assert_num_queries, client_for):
    customer = UserFactory()
    client = client_for(customer)
    items = [{"sku": make_product(stock=10).sku, "quantity": 1}]

    # token+user, products, then one statement (its own transaction): the customer's row lock,
    # then the claims, the order and the rest, counting the open orders too
    with django_assert_num_queries(3):
        response = client.post("/api/v1/orders/", {"items": items}, format="json")
    assert response.status_code == 202, response.content


@pytest.mark.django_db(transaction=True)  # no test transaction around it: savepoints would show as in production
def test_order_create_with_an_idempotency_key(django_assert_num_queries, client_for):
    customer = UserFactory()
    client = client_for(customer)
    WebhookEndpointFactory.create()
    items = [{"sku": make_product(stock=10).sku, "quantity": 1}]

    # token+user, begin, advisory lock, stored key, products, the placing statement (claims,
    # order, lines, event, outbox), key, commit: placement joins the key's transaction (sold-out
    # refusals of earlier tests, counted in memory, are added up first if they are due)
    activity_flush_if_due()
    with django_assert_num_queries(8):
        response = client.post("/api/v1/orders/", {"items": items}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert response.status_code == 202, response.content


@pytest.mark.parametrize("size", SIZES)
def test_order_get(django_assert_num_queries, size, client_for):
    customer = UserFactory()
    order = reserved_order(customer, lines=size)
    client = client_for(customer)

    with django_assert_num_queries(2):  # token+user, the order with its lines
        response = client.get(f"/api/v1/orders/{order.pk}/")
    assert len(response.json()["items"]) == size


@pytest.mark.parametrize("size", SIZES)
def test_order_list(django_assert_num_queries, size, client_for):
    customer = UserFactory()
    for _ in range(size):
        reserved_order(customer, lines=size)
    client = client_for(customer)

    with django_assert_num_queries(3):  # token+user, the page of orders, their lines (nothing counted)
        response = client.get("/api/v1/orders/")
    assert len(response.json()["results"]) == size


@pytest.mark.parametrize("size", SIZES)
def test_order_events(django_assert_num_queries, size, client_for):
    customer = UserFactory()
    order = reserved_order(customer, lines=size)
    client = client_for(customer)

    with django_assert_num_queries(3):  # token+user, the order (visibility), the page of events
        response = client.get(f"/api/v1/orders/{order.pk}/events/")
    assert len(response.json()["results"]) == 2


@pytest.mark.parametrize("size", SIZES)
def test_order_cancel(django_assert_num_queries, size, client_for):
    customer = UserFactory()
    order = reserved_order(customer, lines=size)
    WebhookEndpointFactory.create_batch(size)
    client = client_for(customer)

    with django_assert_num_queries(15):
        response = client.post(f"/api/v1/orders/{order.pk}/cancel/")
    assert response.json()["status"] == "cancelled"
    assert [line.product.available for line in order.lines.select_related("product")] == [10] * size


@pytest.mark.parametrize("size", SIZES)
def test_payment_callback(django_assert_num_queries, size):
    order = reserved_order(UserFactory(), lines=size)
    WebhookEndpointFactory.create_batch(size)
    body, headers = payment_request(
        {"type": "payment.succeeded", "order_id": order.pk, "amount": str(order.total), "currency": order.currency}
    )
    extra = {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in headers.items()}

    with django_assert_num_queries(16):
        response = APIClient().post(
            "/api/v1/payments/webhook/",
            body,
            content_type="application/json",
            **extra,
        )
    assert response.json() == {"result": "applied"}


@pytest.mark.parametrize("size", SIZES)
def test_webhook_endpoint_list(django_assert_num_queries, size, client_for):
    WebhookEndpointFactory.create_batch(size)
    client = client_for(OperatorFactory())

    # token+user, the user's and their groups' permissions, count, the page
    with django_assert_num_queries(5):
        response = client.get("/api/v1/webhooks/endpoints/")
    assert response.json()["count"] == size


@pytest.mark.parametrize("size", SIZES)
def test_webhook_delivery_list(django_assert_num_queries, size, client_for):
    WebhookDeliveryFactory.create_batch(size, status=WebhookDelivery.Status.FAILED)
    client = client_for(OperatorFactory())

    # token+user, the user's and their groups' permissions, the page with its events and endpoints (no count)
    with django_assert_num_queries(4):
        response = client.get("/api/v1/webhooks/deliveries/")
    assert len(response.json()["results"]) == size
