"""The order desk in the Django admin: read-only pages, actions through the services, permissions."""

import pytest
from django.contrib.auth.models import Permission

from inventory.models import Product
from orders.models import Actor, Order
from orders.services import order_mark_paid, order_reserve, order_ship
from tests.admin_pages import admin_action, queries_for
from tests.factories import StaffFactory, UserFactory, bulk_orders, make_order, make_product

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_(client):
    user = StaffFactory(is_superuser=True)
    client.force_login(user)
    return client


def test_the_order_list_costs_the_same_queries_for_5_or_40_orders(admin_client_):
    product = make_product(stock=1000)
    for _ in range(5):
        make_order(lines=[(product, 1)])
    few = queries_for(admin_client_, "/admin/orders/order/")
    for _ in range(35):
        make_order(lines=[(product, 1)])

    many = queries_for(admin_client_, "/admin/orders/order/")

    assert many == few


def test_the_order_page_costs_the_same_queries_for_1_or_10_lines_and_events_by_several_people(admin_client_):
    small = make_order(lines=[(make_product(), 1)])
    order_reserve(order_id=small.pk)
    big = make_order(lines=[(make_product(), 1) for _ in range(10)])
    order_reserve(order_id=big.pk)
    # Events by two more people: the timeline must not read each event's user on its own.
    order_mark_paid(order_id=big.pk, actor=Actor.STAFF, actor_user=StaffFactory())
    order_ship(order_id=big.pk, actor=Actor.STAFF, actor_user=StaffFactory())

    queries_for(admin_client_, f"/admin/orders/order/{small.pk}/change/")  # warm per-process caches

    assert queries_for(admin_client_, f"/admin/orders/order/{big.pk}/change/") == queries_for(
        admin_client_, f"/admin/orders/order/{small.pk}/change/"
    )


def test_the_order_page_shows_lines_and_timeline_and_nothing_is_editable(admin_client_):
    order = make_order(lines=[(make_product(sku="SHOWN-SKU"), 2)])
    order_reserve(order_id=order.pk)

    html = admin_client_.get(f"/admin/orders/order/{order.pk}/change/").content.decode()

    assert "SHOWN-SKU" in html
    assert "stock reserved" in html
    assert 'name="status"' not in html
    assert 'name="total"' not in html


def test_search_finds_orders_by_id_email_and_sku(admin_client_):
    product = make_product(sku="FIND-ME")
    order = make_order(lines=[(product, 1)])
    other = make_order(lines=[(make_product(), 1)])

    def ids(term):
        response = admin_client_.get("/admin/orders/order/", {"q": term})
        return {o.pk for o in response.context["cl"].result_list}

    assert ids(str(order.pk)) == {order.pk}
    assert ids("FIND-ME") == {order.pk}
    assert ids(other.email) == {other.pk}
    assert ids(other.email.upper()) == {other.pk}
    # what is none of them finds nothing, and fails nothing
    for term in ("find-me", "no-such-sku", "9" * 30, "\u00b2", "%", "nobody@example.com"):
        assert ids(term) == set(), term


def test_a_list_longer_than_the_count_limit_says_so_and_pages_through_the_limit(admin_client_, monkeypatch):
    # given more orders than the admin counts (a limit of 3 here)
    monkeypatch.setattr("core.admin_tools.BoundedCountPaginator.limit", 3)
    product = make_product(stock=100)
    bulk_orders(customer=UserFactory(), product=product, count=5, quantity=1)
    monkeypatch.setattr("orders.admin.OrderAdmin.list_per_page", 2)

    response = admin_client_.get("/admin/orders/order/")

    # then it shows "3+ orders" and the pages of the first 3
    html = response.content.decode()
    assert "3+ orders" in html
    assert response.context["cl"].paginator.num_pages == 2
    assert "Select all 3+ orders" in html


def test_an_action_on_more_orders_than_it_may_change_changes_none(admin_client_, monkeypatch):
    monkeypatch.setattr("orders.admin.MAX_ORDERS_PER_ACTION", 2)
    product = make_product(stock=100)
    orders = [make_order(lines=[(product, 1)]) for _ in range(3)]

    texts = admin_action(admin_client_, "/admin/orders/order/", "cancel_orders", [o.pk for o in orders])

    assert any("Nothing was done: at most 2 orders at a time" in t for t in texts)
    assert set(Order.objects.values_list("status", flat=True)) == {"pending"}


def test_bulk_cancel_goes_through_the_service_and_reports_per_order(admin_client_):
    product = make_product(stock=10)
    reserved = make_order(lines=[(product, 2)])
    order_reserve(order_id=reserved.pk)
    shipped_later = make_order(lines=[(product, 1)])
    order_reserve(order_id=shipped_later.pk)
    admin_client_.post(
        "/admin/orders/order/", {"action": "pay_orders", "_selected_action": [shipped_later.pk]}, follow=True
    )

    texts = admin_action(admin_client_, "/admin/orders/order/", "cancel_orders", [reserved.pk, shipped_later.pk])
    assert f"cancel: order(s) {reserved.pk} done." in texts
    assert any(f"cancel refused for order(s) {shipped_later.pk}" in t for t in texts)
    assert Order.objects.get(pk=reserved.pk).status == "cancelled"
    assert Order.objects.get(pk=shipped_later.pk).status == "paid"
    assert Product.objects.get(pk=product.pk).available == 9


def test_retry_reservation_only_requeues_pending_orders(admin_client_):
    reserved = make_order(lines=[(make_product(), 1)])
    order_reserve(order_id=reserved.pk)
    pending = make_order(lines=[(make_product(), 1)])  # placed after: not in the reservation's batch

    texts = admin_action(admin_client_, "/admin/orders/order/", "retry_reservation", [pending.pk, reserved.pk])
    assert f"Reservation queued again for order(s) {pending.pk}." in texts
    assert f"Not pending, skipped: {reserved.pk}." in texts


def test_staff_without_change_permission_see_orders_but_cannot_act(client):
    viewer = StaffFactory()
    viewer.user_permissions.add(Permission.objects.get(codename="view_order"))
    client.force_login(viewer)
    order = make_order(lines=[(make_product(), 1)])

    listing = client.get("/admin/orders/order/")
    attempt = client.post("/admin/orders/order/", {"action": "cancel_orders", "_selected_action": [order.pk]})

    assert listing.status_code == 200
    assert b"cancel_orders" not in listing.content
    assert attempt.status_code in (200, 302)
    assert Order.objects.get(pk=order.pk).status == "pending"


def test_stock_adjustment_form_writes_the_ledger(admin_client_):
    product = make_product(stock=5)

    response = admin_client_.post(
        f"/admin/inventory/product/{product.pk}/adjust-stock/", {"delta": "-2", "reason": "damaged"}, follow=True
    )
    refused = admin_client_.post(
        f"/admin/inventory/product/{product.pk}/adjust-stock/", {"delta": "-10", "reason": "oops"}
    )

    assert response.status_code == 200
    assert Product.objects.get(pk=product.pk).available == 3
    assert product.ledger_entries.filter(kind="adjustment", delta=-2).exists()
    assert refused.status_code == 200
    assert b"would make its stock negative" in refused.content


def test_product_page_shows_recent_ledger(admin_client_):
    product = make_product(stock=5)

    html = admin_client_.get(f"/admin/inventory/product/{product.pk}/change/").content.decode()

    assert "initial stock" in html
    assert "Adjust stock" in html
