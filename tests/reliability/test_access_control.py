"""Access control over real HTTP: what a customer can see and do, and what only staff can."""

from __future__ import annotations

import pytest

from inventory.models import StockLedgerEntry
from orders.models import Order
from tests.factories import make_product
from tests.flows.support import Api, user_with_token

pytestmark = [pytest.mark.flow, pytest.mark.reliability, pytest.mark.django_db(transaction=True)]

STAFF_ONLY_ORDER_ACTIONS = ["pay", "ship", "complete", "refund"]


@pytest.fixture
def apis(live_web):
    clients = {
        name: Api(live_web.base_url, user_with_token(name, staff=name == "staff")[1])
        for name in ("alice", "bob", "staff")
    }
    clients["anonymous"] = Api(live_web.base_url)
    yield clients
    for api in clients.values():
        api.client.close()


def test_a_customer_cannot_see_or_touch_another_customers_orders(apis):
    # given an order of alice's
    make_product("MINE", stock=10)
    response = apis["alice"].place_order([{"sku": "MINE", "quantity": 1}])
    assert response.status_code == 202, response.text
    order_id = response.json()["id"]
    bob = apis["bob"]

    # then for bob it does not exist: by id, in his list, by its events, for every action
    for path in (f"orders/{order_id}/", f"orders/{order_id}/events/"):
        answer = bob.get(bob.url(path))
        assert answer.status_code == 404, (path, answer.text)
        assert answer.json()["errors"][0]["code"].endswith("not_found")
    assert bob.get(bob.url("orders/")).json()["results"] == []
    assert bob.get(bob.url(f"orders/?status={Order.objects.get(pk=order_id).status}")).json()["results"] == []
    assert bob.act(order_id, "cancel").status_code == 404
    # and it is not cancelled (a worker may have reserved it meanwhile)
    assert Order.objects.get(pk=order_id).status in ("pending", "reserved")
    # while alice and staff see it
    assert apis["alice"].get(apis["alice"].url(f"orders/{order_id}/")).status_code == 200
    assert apis["staff"].get(apis["staff"].url(f"orders/{order_id}/")).status_code == 200


def test_protected_fields_cannot_be_written(apis):
    # given a product at 12.50
    make_product("PRICED", stock=10, price="12.50", name="Product PRICED")
    alice = apis["alice"]

    # when a customer sends a status, prices, a total and another owner along with the order
    response = alice.place_order(
        [{"sku": "PRICED", "quantity": 2, "unit_price": "0.01", "line_total": "0.02", "name": "free"}],
        status="paid", total="0.01", currency="EUR", id=999999, customer=1, paid_at="2020-01-01T00:00:00Z",
    )  # fmt: skip

    # then they are ignored: the order is pending, priced by the server, and alice's
    assert response.status_code == 202, response.text
    order = response.json()
    assert (order["status"], order["total"], order["currency"], order["paid_at"]) == ("pending", "25.00", "USD", None)
    assert order["items"][0]["unit_price"] == "12.50" and order["items"][0]["name"] == "Product PRICED"
    assert order["id"] != 999999
    assert Order.objects.get(pk=order["id"]).customer.username == "alice"
    # and orders cannot be rewritten or deleted at all
    for method in ("PUT", "PATCH", "DELETE"):
        answer = alice.client.request(method, alice.url(f"orders/{order['id']}/"), json={"status": "paid"},
                                      headers=alice.headers)  # fmt: skip
        assert answer.status_code == 405, (method, answer.text)
    assert Order.objects.get(pk=order["id"]).status in ("pending", "reserved")


def test_staff_only_actions_are_refused_to_customers_and_anonymous_callers(apis):
    make_product("GUARDED", stock=10)
    alice = apis["alice"]
    order_id = alice.place_order([{"sku": "GUARDED", "quantity": 1}]).json()["id"]
    staff_only = [
        ("POST", "products/", {"sku": "NEW", "name": "New", "price": "1.00", "stock": 1}),
        ("POST", "products/GUARDED/stock-adjustments/", {"delta": 100, "reason": "mine now"}),
        ("GET", "webhooks/endpoints/", None),
        ("POST", "webhooks/endpoints/", {"url": "https://example.com/hook", "events": ["order.paid"]}),
        ("GET", "webhooks/deliveries/", None),
        *[("POST", f"orders/{order_id}/{action}/", None) for action in STAFF_ONLY_ORDER_ACTIONS],
    ]
    for method, path, body in staff_only:
        # a customer is refused (403), an anonymous caller is asked to authenticate (401)
        for who, expected in (("alice", 403), ("anonymous", 401)):
            api = apis[who]
            answer = api.client.request(method, api.url(path), json=body, headers=api.headers)
            assert answer.status_code == expected, (who, method, path, answer.status_code, answer.text)
            assert answer.headers["content-type"] == "application/json"
    # and nothing changed (a worker may have reserved the order meanwhile)
    assert not StockLedgerEntry.objects.filter(kind=StockLedgerEntry.Kind.ADJUSTMENT).exists()
    assert Order.objects.get(pk=order_id).status in ("pending", "reserved")
    assert apis["staff"].get(apis["staff"].url("products/NEW/")).status_code == 404
