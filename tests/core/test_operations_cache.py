"""Operational readings go through Redis as JSON, come back equal, and work without Redis."""

import dataclasses
import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.core.cache import cache
from django.test import override_settings
from django.utils import timezone
from django_redis import get_redis_connection

from core.models import OutboxMessage
from core.readings import outbox_backlog, queue_depths, reading_cache_key
from orders.selectors import order_desk_stats
from tests.factories import UserFactory, make_product

pytestmark = pytest.mark.django_db

READINGS = {
    "queue_depths": queue_depths,
    "outbox_backlog": outbox_backlog,
    "order_desk_stats": order_desk_stats,
}


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def some_orders(client_for):
    # a pending order (so the oldest pending time is a datetime, not None) and its outbox rows
    product = make_product(stock=10)
    response = client_for(UserFactory()).post(
        "/api/v1/orders/", {"items": [{"sku": product.sku, "quantity": 1}]}, format="json"
    )
    assert response.status_code == 202, response.json()


def test_the_cache_serialises_with_json_not_pickle():
    assert settings.CACHES["default"]["OPTIONS"]["SERIALIZER"] == "django_redis.serializers.json.JSONSerializer"

    # a value JSON cannot carry is refused, not pickled
    @dataclasses.dataclass
    class Opaque:
        value: int

    with pytest.raises(TypeError):
        cache.set("opaque", Opaque(1), 5)


@pytest.mark.parametrize("name", READINGS)
def test_a_cached_reading_comes_back_equal_and_is_stored_as_json(name, some_orders):
    # given a reading taken once (and cached)
    first = READINGS[name]()

    # when it is read again, from the cache
    second = READINGS[name]()

    # then it is equal, and what Redis holds is plain JSON
    assert second == first
    raw = get_redis_connection("default").get(cache.make_key(reading_cache_key(name)))
    assert raw is not None
    json.loads(raw)


def test_the_cached_reading_keeps_its_times():
    # given an outbox row written a minute ago, read into the cache
    OutboxMessage.objects.create(task_name="t", args=[], kwargs={})
    OutboxMessage.objects.update(created_at=timezone.now() - timedelta(minutes=1))
    outbox_backlog()

    # then the copy from the cache has the same time, with its time zone
    cached = outbox_backlog()
    assert cached.unpublished == 1
    assert cached.oldest_created_at is not None and cached.oldest_created_at.tzinfo is not None
    assert 55 <= cached.oldest_age_seconds <= 120


@pytest.mark.parametrize("name", READINGS)
def test_a_reading_is_taken_directly_while_redis_is_down(name, some_orders):
    expected = READINGS[name]()
    unreachable = {"default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}}

    with override_settings(CACHES=unreachable):
        assert READINGS[name]() == expected
