"""Staff API actions need the model permission the admin checks for the same action
(core/permissions.py): a support account with only ``view`` permissions changes nothing."""

from __future__ import annotations

import pytest
from django.test import Client

from core.permissions import STAFF_ACTIONS
from inventory.models import Product, StockLedgerEntry
from notifications.models import WebhookEndpoint
from orders.models import Actor, Order, OrderStatus
from orders.services import order_mark_paid, order_reserve
from tests.factories import OperatorFactory, make_order, make_product, view_only_staff

pytestmark = pytest.mark.django_db


@pytest.fixture
def support():
    return view_only_staff()


def reserved_order() -> Order:
    order = make_order(lines=[(make_product(stock=5), 1)])
    order_reserve(order_id=order.pk)
    return Order.objects.get(pk=order.pk)


@pytest.mark.parametrize("action", ["pay", "cancel"])
def test_view_only_staff_cannot_act_on_an_order(client_for, support, action):
    # given a reserved order someone else placed
    order = reserved_order()

    response = client_for(support).post(f"/api/v1/orders/{order.pk}/{action}/")

    assert response.status_code == 403, response.content
    assert Order.objects.get(pk=order.pk).status == OrderStatus.RESERVED


@pytest.mark.parametrize("action", ["ship", "refund"])
def test_view_only_staff_cannot_ship_or_refund_a_paid_order(client_for, support, action):
    order = reserved_order()
    order_mark_paid(order_id=order.pk, actor=Actor.STAFF, actor_user=OperatorFactory.create())

    response = client_for(support).post(f"/api/v1/orders/{order.pk}/{action}/")

    assert response.status_code == 403
    assert response.json()["errors"][0]["code"] == "permission_denied"
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID


def test_staff_with_change_order_may_pay(client_for, staff):
    order = reserved_order()

    response = client_for(staff).post(f"/api/v1/orders/{order.pk}/pay/")

    assert response.status_code == 200
    assert Order.objects.get(pk=order.pk).status == OrderStatus.PAID


def test_view_only_staff_cannot_create_products(client_for, support):
    response = client_for(support).post(
        "/api/v1/products/", {"sku": "NEW-1", "name": "New", "price": "1.00", "stock": 5}, format="json"
    )

    assert response.status_code == 403
    assert "inventory.add_product" in response.json()["errors"][0]["detail"]
    assert not Product.objects.filter(sku="NEW-1").exists()


def test_view_only_staff_cannot_adjust_stock(client_for, support):
    product = make_product(stock=5)

    response = client_for(support).post(
        f"/api/v1/products/{product.sku}/stock-adjustments/", {"delta": 100, "reason": "found"}, format="json"
    )

    assert response.status_code == 403
    assert StockLedgerEntry.objects.filter(product=product).count() == 1  # the initial stock only


def test_view_only_staff_cannot_create_webhook_endpoints(client_for, support):
    response = client_for(support).post(
        "/api/v1/webhooks/endpoints/",
        {"url": "https://merchant.example.com/h", "events": ["order.paid"]},
        format="json",
    )

    assert response.status_code == 403
    assert not WebhookEndpoint.objects.exists()


def test_view_only_staff_may_still_read(client_for, support):
    client = client_for(support)

    assert client.get("/api/v1/orders/").status_code == 200
    assert client.get("/api/v1/webhooks/endpoints/").status_code == 200


def test_the_customer_may_still_cancel_their_own_order(client_for):
    order = reserved_order()

    response = client_for(order.customer).post(f"/api/v1/orders/{order.pk}/cancel/")

    assert response.status_code == 200
    assert Order.objects.get(pk=order.pk).status == OrderStatus.CANCELLED


# --- the admin reads the same map ------------------------------------------------------------


def test_view_only_staff_cannot_adjust_stock_in_the_admin(client: Client, support):
    product = make_product(stock=5)
    client.force_login(support)

    client.post(f"/admin/inventory/product/{product.pk}/adjust-stock/", {"delta": "7", "reason": "x"})

    assert Product.objects.get(pk=product.pk).available == 5


def test_view_only_staff_are_offered_no_order_action_in_the_admin(client: Client, support):
    order = reserved_order()
    client.force_login(support)

    listing = client.get("/admin/orders/order/")
    client.post("/admin/orders/order/", {"action": "pay_orders", "_selected_action": [order.pk]})

    assert listing.status_code == 200
    assert b"pay_orders" not in listing.content
    assert Order.objects.get(pk=order.pk).status == OrderStatus.RESERVED


def test_view_only_staff_may_not_replay_or_purge_dead_letters(rf, support):
    from django.contrib.admin.sites import site

    from core.models import DeadLetter

    request = rf.get("/admin/core/deadletter/")
    request.user = support
    model_admin = site._registry[DeadLetter]

    assert model_admin.has_view_permission(request)
    assert not model_admin.has_replay_permission(request)
    assert not model_admin.has_purge_permission(request)
    request.user = OperatorFactory.create()
    assert model_admin.has_replay_permission(request)
    assert model_admin.has_purge_permission(request)


def test_every_mapped_permission_exists():
    from django.contrib.auth.models import Permission

    for action, permission in STAFF_ACTIONS.items():
        app_label, codename = permission.split(".")
        assert Permission.objects.filter(content_type__app_label=app_label, codename=codename).exists(), action
