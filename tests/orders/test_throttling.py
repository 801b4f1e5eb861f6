"""ORDER_CREATE_RATE: a per-user limit on order creation, kept in Redis, failing open."""

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import override_settings

from orders.apis import OrderCreateThrottle
from orders.models import Order
from tests.factories import UserFactory, make_product

pytestmark = pytest.mark.django_db


@pytest.fixture
def two_per_minute(monkeypatch):
    monkeypatch.setattr(OrderCreateThrottle, "rate", "2/min", raising=False)
    cache.clear()
    yield
    cache.clear()


def create(client, sku):
    return client.post("/api/v1/orders/", {"items": [{"sku": sku, "quantity": 1}]}, format="json")


def test_order_creation_beyond_the_rate_is_429_per_user(two_per_minute, client_for):
    product = make_product(stock=100)
    alice, bob = client_for(UserFactory()), client_for(UserFactory())

    statuses = [create(alice, product.sku).status_code for _ in range(3)]
    bobs = create(bob, product.sku).status_code

    assert statuses == [202, 202, 429]
    assert bobs == 202
    assert Order.objects.count() == 3


def test_reads_are_not_throttled(two_per_minute, client_for):
    client = client_for(UserFactory())

    assert {client.get("/api/v1/orders/").status_code for _ in range(4)} == {200}


def test_orders_are_still_accepted_when_redis_is_down(two_per_minute, client_for):
    product = make_product(stock=100)
    client = client_for(UserFactory())
    # the project's own cache backend, pointed where nothing listens
    unreachable = {"default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}}

    with override_settings(CACHES=unreachable):
        statuses = [create(client, product.sku).status_code for _ in range(3)]

    assert statuses == [202, 202, 202]
