"""Sold-out refusals from the stock marks in Redis (inventory/stock_marks.py).

These tests run without a test transaction around them (``transaction=True``): the marks are
written by on-commit hooks, which a test transaction would never run.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_redis import get_redis_connection
from rest_framework.test import APIClient

from inventory.models import Product
from inventory.services import stock_adjust
from inventory.stock_marks import MARK_SECONDS, StockMark, stock_marks_drop, stock_marks_read, stock_marks_store
from orders.activity import activity_flush
from orders.models import MAX_QUANTITY, Actor, Order, OrderStatus
from orders.services import order_cancel, order_expire_overdue, order_mark_paid, order_refund, order_reserve
from tests.factories import UserFactory, make_product

pytestmark = pytest.mark.django_db(transaction=True)

UNREACHABLE_REDIS = {"default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}}


def client_of(user) -> APIClient:
    # Authenticated without a token lookup: these tests count the placement's own queries.
    client = APIClient()
    client.force_authenticate(user)
    return client


def place(client: APIClient, sku: str, quantity: int = 1):
    return client.post("/api/v1/orders/", {"items": [{"sku": sku, "quantity": quantity}]}, format="json")


def test_a_sold_out_sku_is_refused_from_redis_without_a_database_query(django_assert_num_queries):
    # given one unit, asked for by an accepted order
    customer = UserFactory()
    client = client_of(customer)
    make_product(sku="LAST", stock=1)
    assert place(client, "LAST").status_code == 202
    assert stock_marks_read(skus=["LAST"])["LAST"].free == 0
    # (the refusals are counted in memory and added up every few seconds: the first one now)
    assert place(client, "LAST").status_code == 409

    # when it is asked for again, the answer is 409 sold_out and PostgreSQL is not asked
    with django_assert_num_queries(0):
        response = place(client, "LAST")
    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == "sold_out"


def test_a_mark_that_says_enough_is_not_trusted_to_accept(django_assert_num_queries):
    # given a mark that claims stock the database does not have (written by hand)
    customer = UserFactory()
    product = make_product(sku="GHOST", stock=0)
    stock_marks_store([StockMark(product.pk, product.stock_version + 100, "GHOST", "USD", True, 5)])

    # when an order asks for it, the database decides: sold out
    response = place(client_of(customer), "GHOST")
    assert response.status_code == 409
    assert not Order.objects.exists()


def test_the_database_refusal_writes_the_mark_the_next_refusal_uses(django_assert_num_queries):
    # given a sold-out SKU whose mark Redis lost
    customer = UserFactory()
    client = client_of(customer)
    make_product(sku="LOST", stock=0)
    stock_marks_drop(skus=["LOST"])

    # when it is asked for twice, the first refusal reads the product and the second does not
    with CaptureQueriesContext(connection) as first:
        assert place(client, "LOST").status_code == 409
    assert any("inventory_product" in query["sql"] for query in first.captured_queries)
    # (the refusals counted in memory are written out now, not by the next request if it is due)
    activity_flush()
    with django_assert_num_queries(0):
        assert place(client, "LOST").status_code == 409


def test_an_order_writes_its_mark_only_once_the_mark_can_refuse_a_line(django_assert_num_queries):
    # given a SKU with five units more than a line may ask for, and no mark in Redis
    customer = UserFactory()
    client = client_of(customer)
    make_product(sku="PLENTY", stock=MAX_QUANTITY + 5)
    stock_marks_drop(skus=["PLENTY"])

    # when an order leaves more free than any line may ask for, no mark is written (none could refuse)
    assert place(client, "PLENTY").status_code == 202
    assert stock_marks_read(skus=["PLENTY"]) == {}

    # when the next leaves less, its mark is written, exact
    assert place(client, "PLENTY", quantity=5).status_code == 202
    assert stock_marks_read(skus=["PLENTY"])["PLENTY"].free == MAX_QUANTITY - 1

    # and a line asking for more than that is refused from it, without a database query
    with django_assert_num_queries(0):
        assert place(client, "PLENTY", quantity=MAX_QUANTITY).status_code == 409


def sold_out_by_a_pending_order(sku: str) -> tuple[APIClient, int]:
    customer = UserFactory()
    client = client_of(customer)
    make_product(sku=sku, stock=1)
    first = place(client, sku)
    assert first.status_code == 202
    assert place(client, sku).status_code == 409
    return client, first.json()["id"]


def test_cancelling_a_pending_order_makes_the_sku_orderable_at_once():
    client, order_id = sold_out_by_a_pending_order("CANCEL-P")
    assert client.post(f"/api/v1/orders/{order_id}/cancel/").status_code == 200
    assert place(client, "CANCEL-P").status_code == 202


def test_cancelling_a_reserved_order_makes_the_sku_orderable_at_once():
    client, order_id = sold_out_by_a_pending_order("CANCEL-R")
    assert order_reserve(order_id=order_id) == OrderStatus.RESERVED
    assert place(client, "CANCEL-R").status_code == 409
    assert client.post(f"/api/v1/orders/{order_id}/cancel/").status_code == 200
    assert place(client, "CANCEL-R").status_code == 202


def test_expiry_makes_the_sku_orderable_at_once():
    client, order_id = sold_out_by_a_pending_order("EXPIRE")
    order_reserve(order_id=order_id)
    Order.objects.filter(pk=order_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert order_expire_overdue() == 1
    assert place(client, "EXPIRE").status_code == 202


def test_a_refund_makes_the_sku_orderable_at_once():
    client, order_id = sold_out_by_a_pending_order("REFUND")
    order_reserve(order_id=order_id)
    staff = UserFactory(is_staff=True)
    order_mark_paid(order_id=order_id, actor=Actor.STAFF, actor_user=staff)
    assert place(client, "REFUND").status_code == 409
    order_refund(order_id=order_id, actor=Actor.STAFF, actor_user=staff)
    assert place(client, "REFUND").status_code == 202


def test_a_restock_makes_the_sku_orderable_at_once():
    client, _ = sold_out_by_a_pending_order("RESTOCK")
    stock_adjust(product=Product.objects.get(sku="RESTOCK"), delta=1, reason="delivery")
    assert place(client, "RESTOCK").status_code == 202


def test_a_rejected_order_gives_its_claim_back_at_once():
    # given one unit claimed by a pending order, then taken by a stock adjustment
    client, order_id = sold_out_by_a_pending_order("REJECT")
    stock_adjust(product=Product.objects.get(sku="REJECT"), delta=-1, reason="damaged")
    # when the worker rejects the order and the unit comes back
    assert order_reserve(order_id=order_id) == OrderStatus.REJECTED
    stock_adjust(product=Product.objects.get(sku="REJECT"), delta=1, reason="found")
    # then it is orderable
    assert place(client, "REJECT").status_code == 202


def test_a_product_withdrawn_from_sale_is_a_400_not_a_sold_out():
    # given a sold-out product whose sale staff then stop (through the admin's form)
    customer = UserFactory()
    client = client_of(customer)
    make_product(sku="WITHDRAWN", stock=0)
    assert place(client, "WITHDRAWN").status_code == 409
    staff = UserFactory(is_staff=True, is_superuser=True)
    admin = APIClient()
    admin.force_login(staff)
    product = Product.objects.get(sku="WITHDRAWN")
    form = {"name": product.name, "price": product.price, "currency": product.currency}  # "active" unticked
    assert admin.post(f"/admin/inventory/product/{product.pk}/change/", form).status_code == 302

    # when it is asked for, the answer is the database's: not for sale
    response = place(client, "WITHDRAWN")
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "product_inactive"


def test_an_older_mark_never_replaces_a_newer_one():
    # given the mark of version 7
    product = make_product(sku="ORDERED", stock=3)
    newer = StockMark(product.pk, 7, "ORDERED", "USD", True, 3)
    stock_marks_store([newer])

    # when a hook that ran late writes version 6 (sold out)
    stock_marks_store([StockMark(product.pk, 6, "ORDERED", "USD", True, 0)])

    # then Redis keeps version 7
    assert stock_marks_read(skus=["ORDERED"])["ORDERED"] == newer


def test_with_redis_unreachable_the_database_refuses_and_accepts():
    customer = UserFactory()
    client = client_of(customer)
    make_product(sku="NO-REDIS", stock=1)
    with override_settings(CACHES=UNREACHABLE_REDIS):
        assert place(client, "NO-REDIS").status_code == 202
        assert place(client, "NO-REDIS").status_code == 409
        stock_adjust(product=Product.objects.get(sku="NO-REDIS"), delta=1, reason="delivery")
        assert place(client, "NO-REDIS").status_code == 202


def test_a_mark_that_could_not_be_replaced_expires_within_its_lifetime():
    # given a sold-out mark in Redis
    client, order_id = sold_out_by_a_pending_order("OUTAGE")
    assert stock_marks_read(skus=["OUTAGE"])["OUTAGE"].free == 0

    # when the cancel's hook cannot reach Redis (from this process only: the mark stays there)
    with override_settings(CACHES=UNREACHABLE_REDIS):
        order_cancel(order_id=order_id, actor=Actor.CUSTOMER, actor_user=None)
        # meanwhile this process answers from the database
        assert place(client, "OUTAGE").status_code == 202

    # then the stale mark is trusted for at most MARK_SECONDS more
    assert 0 < get_redis_connection("default").ttl("orders:stock-mark:OUTAGE") <= MARK_SECONDS
