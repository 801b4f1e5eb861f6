"""The hot requests (orders/middleware.py): a customer's read of their own order, answered from
Redis, and their one-line order, placed without the rest of the stack or refused from the mark.

Without a test transaction around them (``transaction=True``): the copies are written by on-commit
hooks, which a test transaction would never run.
"""

from __future__ import annotations

from typing import Any

import pytest
from django import db
from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client, override_settings
from prometheus_client import REGISTRY

from core import copies
from core.models import OutboxMessage
from core.tokens import api_tokens_issue_bulk
from inventory.stock_marks import stock_mark_key, stock_marks_clear
from orders import apis, middleware
from orders.apis import OrderCreateApi, OrderCreateThrottle, OrderDetailApi
from orders.middleware import OrderHotPathMiddleware
from orders.models import Order, OrderStatus
from orders.services import order_reserve
from orders.services.reservation import RESERVE_TASK
from tests.factories import StaffFactory, UserFactory, make_product

pytestmark = pytest.mark.django_db(transaction=True)

UNREACHABLE_REDIS = {"default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}}
# What differs between two answers to the same request.
PER_REQUEST_HEADERS = {"X-Request-ID"}


class FullPath:
    """Counts the requests the views answered (the full path)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reads = 0
        self.creates = 0
        read, create = OrderDetailApi.get, OrderCreateApi.post

        def counted_read(view, request, order_id):
            self.reads += 1
            return read(view, request, order_id)

        def counted_create(view, request, *args, **kwargs):
            self.creates += 1
            return create(view, request, *args, **kwargs)

        monkeypatch.setattr(OrderDetailApi, "get", counted_read)
        monkeypatch.setattr(OrderCreateApi, "post", counted_create)


@pytest.fixture
def full_path(monkeypatch) -> FullPath:
    return FullPath(monkeypatch)


def token_client(user) -> Client:
    (token,) = api_tokens_issue_bulk(users=[user])
    return Client(HTTP_AUTHORIZATION=f"Token {token}")


def placed(client: Client) -> int:
    product = make_product(stock=5)
    response = client.post("/api/v1/orders/", {"items": [{"sku": product.sku, "quantity": 1}]}, "application/json")
    assert response.status_code == 202, response.content
    return response.json()["id"]


def headers(response) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if name not in PER_REQUEST_HEADERS}


def answered(view: str = "order-detail", status: str = "200", method: str = "GET") -> float:
    labels = {"status": status, "view": view, "method": method}
    return REGISTRY.get_sample_value("django_http_responses_total_by_status_view_method_total", labels) or 0.0


def test_a_customers_read_of_their_order_is_answered_from_the_copies_as_the_full_path_answers_it(
    full_path, django_assert_num_queries
):
    # given a customer's order, read once through the full path (which leaves its copy)
    customer = token_client(UserFactory())
    order_id = placed(customer)
    first = customer.get(f"/api/v1/orders/{order_id}/")
    assert first.status_code == 200 and full_path.reads == 1
    counted = answered()

    # when they read it again
    with django_assert_num_queries(0):
        second = customer.get(f"/api/v1/orders/{order_id}/")

    # then the copies answered, with the same bytes and headers, and a request id of its own
    assert full_path.reads == 1
    assert second.status_code == 200
    assert second.content == first.content
    assert headers(second) == headers(first)
    assert second["X-Request-ID"] and second["X-Request-ID"] != first["X-Request-ID"]
    # and the request is counted as the full path counts it
    assert answered() == counted + 1


def test_a_read_right_after_a_change_sees_the_change(full_path):
    customer = token_client(UserFactory())
    order_id = placed(customer)
    assert customer.get(f"/api/v1/orders/{order_id}/").json()["status"] == "pending"

    order_reserve(order_id=order_id)  # the worker's transaction replaces the copy on commit
    reserved = customer.get(f"/api/v1/orders/{order_id}/").json()
    assert customer.post(f"/api/v1/orders/{order_id}/cancel/").status_code == 200
    cancelled = customer.get(f"/api/v1/orders/{order_id}/").json()

    assert reserved["status"] == "reserved" and cancelled["status"] == "cancelled"
    assert full_path.reads == 1  # the first read only: the others came from the replaced copies


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("another customer's order", 404),
        ("staff", 200),
        ("a revoked token", 401),
        ("a query string", 200),
        ("HTML asked for", 200),
        ("Redis unreachable", 200),
    ],
)
def test_the_full_path_answers_what_the_copies_cannot(full_path, case, status):
    # given an order read once, so that Redis has its copy and the token's
    owner = token_client(UserFactory())
    order_id = placed(owner)
    assert owner.get(f"/api/v1/orders/{order_id}/").status_code == 200
    reads = full_path.reads
    client, path, extra = owner, f"/api/v1/orders/{order_id}/", {}
    if case == "another customer's order":
        client = token_client(UserFactory())
        client.get(f"/api/v1/orders/{placed(client)}/")  # its token's copy is there too
        reads = full_path.reads
    elif case == "staff":  # reading their own order
        client = token_client(StaffFactory.create(is_superuser=True))
        path = f"/api/v1/orders/{placed(client)}/"
        client.get(path)
        reads = full_path.reads
    elif case == "a revoked token":
        assert owner.post("/api/v1/auth/logout/").status_code in (200, 204)
    elif case == "a query string":
        path += "?format=json"
    elif case == "HTML asked for":
        extra = {"HTTP_ACCEPT": "text/html"}

    # when it is read
    if case == "Redis unreachable":
        with override_settings(CACHES=UNREACHABLE_REDIS):
            response = client.get(path, **extra)
    else:
        response = client.get(path, **extra)

    # then the full path answered, as it always has (a 401 is its authentication's, before the view)
    assert response.status_code == status, response.content
    assert full_path.reads == reads + (status != 401)


def order_of(sku: str, quantity: int = 1) -> dict:
    return {"items": [{"sku": sku, "quantity": quantity}]}


def test_a_sold_out_refusal_is_answered_from_the_mark_as_the_full_path_answers_it(full_path, django_assert_num_queries):
    # given a SKU with no stock, refused once by the database (which leaves its mark)
    customer = token_client(UserFactory())
    product = make_product(stock=0)
    first = customer.post("/api/v1/orders/", order_of(product.sku), "application/json")
    assert first.status_code == 409 and full_path.creates == 1
    counted = answered(view="order-list", status="409", method="POST")

    # when the customer tries again
    with django_assert_num_queries(0):
        second = customer.post("/api/v1/orders/", order_of(product.sku), "application/json")

    # then the mark refused it, with the same bytes and headers
    assert full_path.creates == 1
    assert second.status_code == 409
    assert second.content == first.content
    assert headers(second) == headers(first)
    assert second.json()["errors"][0]["code"] == "sold_out"
    assert answered(view="order-list", status="409", method="POST") == counted + 1


def test_sold_out_refusals_are_not_logged_as_warnings_by_either_path(full_path, caplog):
    # given a sold-out SKU
    customer = token_client(UserFactory())
    product = make_product(stock=0)

    # when it is refused twice (by the database, then from its mark), and another 409 is answered
    with caplog.at_level("WARNING", logger="django.request"):
        refused = [customer.post("/api/v1/orders/", order_of(product.sku), "application/json") for _ in range(2)]
        order_id = placed(customer)
        assert customer.post(f"/api/v1/orders/{order_id}/pay/").status_code in (403, 409)

    # then neither refusal is a warning in the log (they are counted instead); other answers are.
    # (The first request went down the full path: its token had no copy yet.)
    assert [r.status_code for r in refused] == [409, 409] and full_path.creates == 1
    logged = [r.getMessage() for r in caplog.records if r.name == "django.request"]
    assert len(logged) == 1 and "/pay/" in logged[0], logged


def test_refusals_from_the_marks_count_against_the_rate_limit_once_each(full_path, monkeypatch):
    # given a rate limit of three orders a minute, and a sold-out SKU
    monkeypatch.setattr(OrderCreateThrottle, "rate", "3/min", raising=False)
    cache.clear()  # no history of earlier tests' users (ids are reused)
    customer = token_client(UserFactory())
    product = make_product(stock=0)

    # when the customer tries four times
    statuses = [
        customer.post("/api/v1/orders/", order_of(product.sku), "application/json").status_code for _ in range(4)
    ]

    # then the first three are refused as sold out (the last two from the mark), the fourth as
    # too many, by the full path's throttle (before its view)
    assert statuses == [409, 409, 409, 429]
    assert full_path.creates == 1


def through_full_path(client: Client, path: str, body: dict, content_type: str = "application/json") -> Any:
    """The order, placed with the hot path leaving every request to the full path."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(OrderHotPathMiddleware, "_create", lambda self, request, found: None)
        return client.post(path, body, content_type)


def customer_with_cached_token() -> tuple[Client, User]:
    """A customer whose token's copy Redis holds: their first request, down the full path, left it."""
    user = UserFactory.create()
    client = token_client(user)
    assert client.get("/api/v1/orders/").status_code == 200
    return client, user


def without(data: dict, *keys: str) -> dict:
    return {key: value for key, value in data.items() if key not in keys}


def test_an_order_is_placed_by_the_hot_path_as_the_full_path_places_it(full_path, django_assert_num_queries):
    # given a customer whose token's copy Redis holds, and a product, ordered once down the full path
    customer, user = customer_with_cached_token()
    product = make_product(stock=5)
    first = through_full_path(customer, "/api/v1/orders/", order_of(product.sku, 2))
    assert first.status_code == 202, first.content
    creates, counted = full_path.creates, answered(view="order-list", status="202", method="POST")

    # when they place the same order again
    # (the product and the placement, as down the full path; outside flow tests nothing is published)
    with django_assert_num_queries(2):
        second = customer.post("/api/v1/orders/", order_of(product.sku, 2), "application/json")

    # then the hot path placed it, answering as the full path did (but for the new order's id and times)
    assert second.status_code == 202, second.content
    assert full_path.creates == creates
    first_id, second_id = first.json()["id"], second.json()["id"]
    assert second_id != first_id
    assert without(second.json(), "id", "created_at", "updated_at") == without(
        first.json(), "id", "created_at", "updated_at"
    )
    assert second["Location"] == first["Location"].replace(f"/{first_id}/", f"/{second_id}/")
    assert without(headers(second), "Location") == without(headers(first), "Location")
    assert answered(view="order-list", status="202", method="POST") == counted + 1
    # and the order is written as the full path writes it: its line, its event, its claim and its
    # reservation task
    order = Order.objects.get(pk=second_id)
    assert (order.customer_id, order.status, order.email) == (user.pk, OrderStatus.PENDING, user.email)
    assert [(line.sku, line.quantity) for line in order.lines.all()] == [(product.sku, 2)]
    assert [event.to_status for event in order.events.all()] == [OrderStatus.PENDING]
    task = OutboxMessage.objects.get(args=[second_id])
    assert (task.task_name, task.request_id) == (RESERVE_TASK, second["X-Request-ID"])
    product.refresh_from_db()
    assert product.claimed == 4


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("sold out, as the database finds", 409),
        ("too many open orders", 409),
        ("a product no longer for sale", 400),
        ("PostgreSQL unavailable", 503),
    ],
)
def test_what_order_place_raises_on_the_hot_path_is_answered_as_the_full_path_answers_it(
    full_path, monkeypatch, settings, caplog, case, status
):
    # given a customer whose token's copy Redis holds, and an order order_place refuses or cannot place
    customer, _ = customer_with_cached_token()
    product = make_product(stock=0 if case.startswith("sold out") else 5)
    if case == "too many open orders":
        settings.ORDER_MAX_OPEN_PER_CUSTOMER = 1
        assert customer.post("/api/v1/orders/", order_of(product.sku), "application/json").status_code == 202
    elif case == "a product no longer for sale":
        product.active = False
        product.save(update_fields=["active"])
    elif case == "PostgreSQL unavailable":

        def unavailable(**kwargs):
            raise db.OperationalError("connection to server at 127.0.0.1, port 5432 failed: Connection refused")

        monkeypatch.setattr(apis, "order_place", unavailable)
        monkeypatch.setattr(middleware, "order_place", unavailable)
        customer.raise_request_exception = False  # the answer, not the exception the handler reports
    creates = full_path.creates

    # when it is placed down the full path, then by the hot path, order_place deciding each time
    # (no stock mark: the refusal of the first would otherwise leave one, which would refuse the second)
    logged = []
    for place in (through_full_path, Client.post):
        stock_marks_clear()
        caplog.clear()
        with caplog.at_level("WARNING"):
            answer = place(customer, "/api/v1/orders/", order_of(product.sku), "application/json")
        logged.append([(r.name, r.levelname, r.getMessage()) for r in caplog.records])
        if place is through_full_path:
            first = answer
    second = answer

    # then the two answers are the same, and logged alike; the view answered the first only
    assert first.status_code == second.status_code == status, second.content
    assert second.content == first.content
    assert headers(second) == headers(first)
    assert logged[1] == logged[0]
    assert full_path.creates == creates + 1


def test_orders_placed_by_the_hot_path_count_against_the_rate_limit_once_each(full_path, monkeypatch):
    # given a rate limit of three orders a minute, and a product with stock
    monkeypatch.setattr(OrderCreateThrottle, "rate", "3/min", raising=False)
    cache.clear()  # no history of earlier tests' users (ids are reused)
    user = UserFactory()
    customer = token_client(user)
    product = make_product(stock=10)

    # when the customer orders four times
    statuses = [
        customer.post("/api/v1/orders/", order_of(product.sku), "application/json").status_code for _ in range(4)
    ]

    # then three are placed (the last two by the hot path), and the fourth is refused as too many, by
    # the full path's throttle (before its view)
    assert statuses == [202, 202, 202, 429]
    assert full_path.creates == 1
    assert Order.objects.filter(customer=user).count() == 3


@pytest.mark.parametrize(
    ("case", "status"),
    [
        ("an Idempotency-Key", 409),
        ("two lines", 409),
        ("an e-mail in the body", 409),
        ("a quantity as text", 409),
        ("staff", 409),
        ("Redis unreachable", 409),
    ],
)
def test_the_full_path_answers_the_orders_the_hot_path_leaves(full_path, case, status):
    # given a sold-out SKU with its mark, and a customer whose token is cached
    customer = token_client(UserFactory())
    sold_out, other = make_product(stock=0), make_product(stock=5)
    assert customer.post("/api/v1/orders/", order_of(sold_out.sku), "application/json").status_code == 409
    creates = full_path.creates
    client, body, extra = customer, order_of(sold_out.sku), {}
    if case == "an Idempotency-Key":
        extra = {"HTTP_IDEMPOTENCY_KEY": "hot-path-1"}
    elif case == "two lines":
        body = {"items": [{"sku": sold_out.sku, "quantity": 1}, {"sku": other.sku, "quantity": 1}]}
    elif case == "an e-mail in the body":
        body = {**body, "email": "someone@example.com"}
    elif case == "a quantity as text":
        body = {"items": [{"sku": sold_out.sku, "quantity": "1"}]}
    elif case == "staff":
        client = token_client(StaffFactory.create(is_superuser=True))

    # when the order is placed
    if case == "Redis unreachable":
        with override_settings(CACHES=UNREACHABLE_REDIS):
            response = client.post("/api/v1/orders/", body, "application/json", **extra)
    else:
        response = client.post("/api/v1/orders/", body, "application/json", **extra)

    # then the full path answered, as it always has
    assert response.status_code == status, response.content
    assert full_path.creates == creates + 1


@pytest.mark.parametrize("marked", [True, False], ids=["with its mark", "without a mark"])
def test_an_order_placed_reads_the_token_and_the_mark_from_redis_once(full_path, monkeypatch, marked):
    # given a customer whose token is cached and a SKU with stock, whose mark Redis holds or not
    # (as after an eviction); the first request goes down the full path: the token has no copy yet
    customer = token_client(UserFactory())
    product = make_product(stock=5)
    assert customer.post("/api/v1/orders/", order_of(product.sku, 1000), "application/json").status_code == 409
    if not marked:
        stock_marks_clear()
    assert (copies.copies_read(keys=[stock_mark_key(product.sku)]) != [None]) is marked
    reads: list[list[str]] = []
    mget = copies._mget

    def counting_mget(keys):
        reads.append(list(keys))
        return mget(keys)

    monkeypatch.setattr(copies, "_mget", counting_mget)

    # when the customer orders one of it
    response = customer.post("/api/v1/orders/", order_of(product.sku), "application/json")

    # then it is placed, order_place taking the hot path's read of the mark (or of its absence)
    # as its own: one round trip for both copies
    assert response.status_code == 202, response.content
    assert full_path.creates == 1
    assert len(reads) == 1 and len(reads[0]) == 2, reads


def test_a_read_after_redis_closed_the_kept_connection_is_answered_from_the_copies(full_path):
    # given a customer's order, read through the full path, then from the copies
    customer = token_client(UserFactory())
    order_id = placed(customer)
    assert customer.get(f"/api/v1/orders/{order_id}/").status_code == 200
    assert customer.get(f"/api/v1/orders/{order_id}/").status_code == 200 and full_path.reads == 1
    # when Redis closes the connection the copies are read on (as a restart or its idle timeout does)
    kept = copies._kept.connection
    host, port = kept._sock.getsockname()[:2]
    client_address = f"{host}:{port}"
    assert copies._redis().client_kill_filter(addr=client_address) == 1

    # then the next read is still answered from the copies, on a new connection
    assert customer.get(f"/api/v1/orders/{order_id}/").status_code == 200
    assert full_path.reads == 1
    assert copies._kept.connection is not kept


def test_copies_read_as_none_while_redis_is_unreachable_and_again_once_it_is_back():
    key = "orders:test:kept-connection"
    copies._redis().set(key, '[[1], "copy"]', ex=60)
    assert copies.copies_read(keys=[key]) == ["copy"]

    with override_settings(CACHES=UNREACHABLE_REDIS):
        assert copies.copies_read(keys=[key], quiet=True) == [None]

    assert copies.copies_read(keys=[key]) == ["copy"]


def test_a_read_that_timed_out_on_the_kept_connection_is_tried_once_more_on_a_new_one():
    # given a copy read once, on the kept connection
    key = "orders:test:kept-connection-timeout"
    copies._redis().set(key, '[[1], "copy"]', ex=60)
    assert copies.copies_read(keys=[key]) == ["copy"]
    kept = copies._kept.connection
    # when Redis stops answering for longer than the read's socket timeout, but not twice as long
    # (as a Redis busy with a slow command does)
    pause_ms = int(kept.socket_timeout * 1500)
    copies._redis().execute_command("CLIENT", "PAUSE", pause_ms, "ALL")

    # then the read is still answered from the copy, on a new connection
    assert copies.copies_read(keys=[key]) == ["copy"]
    assert copies._kept.connection is not kept
