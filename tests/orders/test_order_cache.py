"""The order's cached representation (orders/cache.py): read-your-writes after every change.

Without a test transaction around them (``transaction=True``): the copies are replaced by
on-commit hooks, which a test transaction would never run.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client, override_settings
from django.utils import timezone
from django_redis import get_redis_connection
from rest_framework.test import APIClient

from inventory.services import stock_adjust
from orders.cache import LIVE_SECONDS, order_cache_read, order_cache_store
from orders.models import Order, OrderStatus
from orders.services import order_expire_overdue, order_reserve
from orders.services.payments import payment_callback_process
from tests.factories import StaffFactory, UserFactory, make_product
from tests.payments import payment_request

pytestmark = pytest.mark.django_db(transaction=True)

UNREACHABLE_REDIS = {"default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}}


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def admin() -> Client:
    client = Client()
    client.force_login(StaffFactory.create(is_superuser=True))
    return client


def read(client: APIClient, order_id: int) -> dict:
    response = client.get(f"/api/v1/orders/{order_id}/")
    assert response.status_code == 200, response.content
    return response.json()


def placed(customer, stock: int = 5) -> int:
    product = make_product(stock=stock)
    response = api(customer).post("/api/v1/orders/", {"items": [{"sku": product.sku, "quantity": 1}]}, format="json")
    assert response.status_code == 202
    return response.json()["id"]


def test_every_transition_is_read_right_after_it(django_assert_num_queries):
    customer, staff = UserFactory(), StaffFactory(is_superuser=True)
    order_id = placed(customer)
    assert read(api(customer), order_id)["status"] == "pending"  # now cached
    with django_assert_num_queries(0):
        assert read(api(customer), order_id)["status"] == "pending"

    order_reserve(order_id=order_id)  # the worker's transaction
    reserved = read(api(customer), order_id)
    assert reserved["status"] == "reserved" and reserved["expires_at"] is not None

    for action, status in (("pay", "paid"), ("ship", "shipped"), ("complete", "completed")):
        assert api(staff).post(f"/api/v1/orders/{order_id}/{action}/").status_code == 200
        assert read(api(customer), order_id)["status"] == status
        assert read(api(staff), order_id)["status"] == status


def test_cancel_through_the_api_is_read_right_after_it():
    customer = UserFactory()
    order_id = placed(customer)
    assert read(api(customer), order_id)["status"] == "pending"
    assert api(customer).post(f"/api/v1/orders/{order_id}/cancel/").status_code == 200
    assert read(api(customer), order_id)["status"] == "cancelled"


def test_rejection_and_expiry_are_read_right_after_them():
    customer = UserFactory()
    rejected = placed(customer, stock=1)
    assert read(api(customer), rejected)["status"] == "pending"
    product = Order.objects.get(pk=rejected).lines.get().product
    stock_adjust(product=product, delta=-1, reason="damaged")  # the worker will find none
    assert order_reserve(order_id=rejected) == OrderStatus.REJECTED
    assert read(api(customer), rejected)["status"] == "rejected"

    expiring = placed(customer)
    order_reserve(order_id=expiring)
    assert read(api(customer), expiring)["status"] == "reserved"
    Order.objects.filter(pk=expiring).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert order_expire_overdue() == 1
    assert read(api(customer), expiring)["status"] == "expired"


def test_cancel_and_refund_through_the_admin_are_read_right_after_them():
    customer = UserFactory()
    staff_admin = admin()
    to_cancel, to_refund = placed(customer), placed(customer)
    for order_id in (to_cancel, to_refund):
        order_reserve(order_id=order_id)
        assert read(api(customer), order_id)["status"] == "reserved"

    staff_admin.post("/admin/orders/order/", {"action": "cancel_orders", "_selected_action": [to_cancel]})
    assert read(api(customer), to_cancel)["status"] == "cancelled"

    staff_admin.post("/admin/orders/order/", {"action": "pay_orders", "_selected_action": [to_refund]})
    assert read(api(customer), to_refund)["status"] == "paid"
    staff_admin.post("/admin/orders/order/", {"action": "refund_orders", "_selected_action": [to_refund]})
    assert read(api(customer), to_refund)["status"] == "refunded"


def test_a_payment_callback_is_read_right_after_it():
    customer = UserFactory()
    order_id = placed(customer)
    order_reserve(order_id=order_id)
    assert read(api(customer), order_id)["status"] == "reserved"
    order = Order.objects.get(pk=order_id)
    payload = {"type": "payment.succeeded", "order_id": order_id, "amount": str(order.total), "currency": "USD"}
    body, headers = payment_request(payload)
    payment_callback_process(body=body, headers=headers)
    assert read(api(customer), order_id)["status"] == "paid"


def test_another_customers_order_is_not_found_from_the_copy_either():
    owner, other = UserFactory(), UserFactory()
    order_id = placed(owner)
    read(api(owner), order_id)  # cached
    assert order_cache_read(order_id=order_id) is not None
    assert api(other).get(f"/api/v1/orders/{order_id}/").status_code == 404


def test_a_copy_read_before_a_change_never_replaces_the_change():
    # given a copy of the pending order, taken from the database before it was reserved
    customer = UserFactory()
    order_id = placed(customer)
    stale = Order.objects.get(pk=order_id)
    stale_payload = read(api(customer), order_id)
    order_reserve(order_id=order_id)

    # when that reader stores its copy after the reservation's hook replaced it
    order_cache_store(order=stale, payload=stale_payload)

    # then the reservation is what is read
    assert read(api(customer), order_id)["status"] == "reserved"


def test_with_redis_unreachable_the_database_answers():
    customer = UserFactory()
    order_id = placed(customer)
    read(api(customer), order_id)  # cached as pending
    with override_settings(CACHES=UNREACHABLE_REDIS):
        assert read(api(customer), order_id)["status"] == "pending"
        assert api(customer).post(f"/api/v1/orders/{order_id}/cancel/").status_code == 200
        assert read(api(customer), order_id)["status"] == "cancelled"
    # The copy the cancel could not replace (Redis unreachable from this process only) is
    # trusted for at most LIVE_SECONDS more.
    assert 0 < get_redis_connection("default").ttl(f"orders:order:{order_id}") <= LIVE_SECONDS
