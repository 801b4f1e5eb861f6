"""The audit trail: staff actions record who, what, when and the object before and after, in the
transaction of the change; the admin shows it read-only."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client

from config import queues
from core.dead_letters import dead_letter_purge, dead_letter_replay
from core.models import AuditEntry
from inventory.models import StockLedgerEntry
from notifications.models import WebhookEndpoint
from orders.models import Order
from orders.services import order_reserve
from tests.factories import OperatorFactory, make_order, make_product
from tests.processes import dead_letter_to

pytestmark = pytest.mark.django_db


def only_entry(**filters) -> AuditEntry:
    (entry,) = AuditEntry.objects.filter(**filters)
    return entry


def test_a_stock_adjustment_names_its_user_in_the_ledger_and_the_trail(client_for, staff):
    product = make_product(stock=5)

    client_for(staff).post(
        f"/api/v1/products/{product.sku}/stock-adjustments/", {"delta": -2, "reason": "damaged"}, format="json"
    )

    ledger = StockLedgerEntry.objects.get(product=product, kind="adjustment")
    assert ledger.actor == staff
    entry = only_entry(action="stock.adjust")
    assert (entry.actor, entry.actor_name, entry.target_type, entry.target_id) == (
        staff,
        staff.username,
        "product",
        product.sku,
    )
    assert entry.before == {"available": 5}
    assert entry.after == {"available": 3, "delta": -2, "reason": "damaged"}
    assert entry.request_id  # ties the entry to the request's log lines


def test_a_staff_order_action_is_recorded_a_customers_is_not(client_for, staff):
    order = make_order(lines=[(make_product(stock=5), 1)])
    order_reserve(order_id=order.pk)
    other = make_order(lines=[(make_product(stock=5), 1)])

    client_for(staff).post(f"/api/v1/orders/{order.pk}/pay/")
    client_for(other.customer).post(f"/api/v1/orders/{other.pk}/cancel/")

    entry = only_entry(action="order.pay")
    assert (entry.actor, entry.target_id, entry.before, entry.after) == (
        staff,
        str(order.pk),
        {"status": "reserved"},
        {"status": "paid"},
    )
    assert not AuditEntry.objects.filter(action="order.cancel").exists()
    assert Order.objects.get(pk=other.pk).status == "cancelled"


def test_a_refused_action_leaves_no_entry(client_for, staff):
    order = make_order(lines=[(make_product(stock=5), 1)])  # pending: cannot be shipped

    assert client_for(staff).post(f"/api/v1/orders/{order.pk}/ship/").status_code == 409
    assert not AuditEntry.objects.exists()


def test_product_creation_and_admin_changes_are_recorded(client_for, staff, client: Client):
    client_for(staff).post(
        "/api/v1/products/", {"sku": "AUD-1", "name": "Audited", "price": "2.50", "stock": 4}, format="json"
    )
    client.force_login(staff)

    client.post(
        f"/admin/inventory/product/{make_product('AUD-2', name='Old name').pk}/change/",
        {"name": "New name", "price": "10.00", "currency": "USD", "active": "on"},
    )

    created = only_entry(action="product.create")
    assert (created.target_id, created.after) == (
        "AUD-1",
        {"name": "Audited", "price": "2.50", "currency": "USD", "stock": 4},
    )
    changed = only_entry(action="product.change")
    assert (changed.actor, changed.target_id, changed.before, changed.after) == (
        staff,
        "AUD-2",
        {"name": "Old name"},
        {"name": "New name"},
    )


def test_endpoint_changes_are_recorded_without_their_secret(client_for, staff, client: Client):
    response = client_for(staff).post(
        "/api/v1/webhooks/endpoints/",
        {"url": "https://merchant.example.com/a", "events": ["order.paid"]},
        format="json",
    )
    endpoint = WebhookEndpoint.objects.get(pk=response.json()["id"])
    client.force_login(staff)
    client.post(
        f"/admin/notifications/webhookendpoint/{endpoint.pk}/change/",
        {"url": "https://merchant.example.com/b", "events": ["order.paid"]},
    )

    added, changed = only_entry(action="webhook_endpoint.add"), only_entry(action="webhook_endpoint.change")
    assert added.after == {"url": "https://merchant.example.com/a", "events": ["order.paid"], "active": True}
    assert changed.before == {"url": "https://merchant.example.com/a", "active": True}
    assert changed.after == {"url": "https://merchant.example.com/b", "active": False}
    for entry in (added, changed):
        assert endpoint.secret not in str(entry.before) + str(entry.after)


def test_dead_letter_replay_and_purge_are_recorded(dead_letter_queues_empty):
    operator = OperatorFactory.create()
    replayed, purged = dead_letter_to(queues.ORDERS), dead_letter_to(queues.ORDERS)

    dead_letter_replay(ids=[replayed], actor=operator)
    dead_letter_purge(ids=[purged], actor_name="manage.py dlq")

    replay, purge = only_entry(action="dead_letter.replay"), only_entry(action="dead_letter.purge")
    assert (replay.actor, replay.target_id) == (operator, replayed)
    assert replay.before["letters"][0]["queue"] == queues.ORDERS
    assert (purge.actor, purge.actor_name, purge.target_id) == (None, "manage.py dlq", purged)


def test_the_trail_is_read_only_in_the_admin(client: Client, staff):
    make_product(stock=5)
    superuser = User.objects.create_superuser("root", "root@example.com", "pass-for-tests")
    client.force_login(superuser)
    from inventory.models import Product
    from inventory.services import stock_adjust

    stock_adjust(product=Product.objects.get(), delta=1, reason="found", actor=superuser)
    entry = AuditEntry.objects.get()

    assert client.get("/admin/core/auditentry/").status_code == 200
    assert client.get("/admin/core/auditentry/add/").status_code == 403
    client.post(f"/admin/core/auditentry/{entry.pk}/change/", {"action": "forged"})
    client.post(f"/admin/core/auditentry/{entry.pk}/delete/", {"post": "yes"})
    assert AuditEntry.objects.get(pk=entry.pk).action == "stock.adjust"
