"""The order and product API: validation, visibility, permissions, transitions."""

import json

import pytest
from rest_framework.test import APIClient

from core.models import OutboxMessage
from inventory.models import Product
from inventory.services import stock_adjust
from notifications.models import NotificationEvent
from orders.models import Order, OrderEvent
from orders.selectors import stock_claim_discrepancies
from orders.services import order_reserve
from tests.factories import StaffFactory, UserFactory, make_order, make_product, token_for

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
    return client


@pytest.fixture
def customer():
    return UserFactory()


@pytest.fixture
def staff():
    return StaffFactory()


def attrs(response) -> set[str]:
    return {error["attr"] for error in response.json()["errors"]}


# --- creating orders ------------------------------------------------------------------------


def test_create_order_answers_202_with_the_pending_order_and_its_location(customer):
    product = make_product(stock=5, price="12.50")

    response = client_for(customer).post(
        "/api/v1/orders/", {"items": [{"sku": product.sku, "quantity": 2}]}, format="json"
    )

    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "pending"
    assert body["total"] == "25.00"
    assert body["currency"] == "USD"
    assert body["email"] == customer.email
    assert body["items"] == [
        {"sku": product.sku, "name": "Test product", "quantity": 2, "unit_price": "12.50", "line_total": "25.00"}
    ]
    assert response["Location"] == f"http://testserver/api/v1/orders/{body['id']}/"
    assert OrderEvent.objects.get(order_id=body["id"]).to_status == "pending"
    # stock is reserved later, by a worker
    assert Product.objects.get(pk=product.pk).available == 5


def test_an_order_the_stock_cannot_serve_in_full_is_refused_with_409_and_writes_nothing(customer):
    plenty = make_product(sku="PLENTY", stock=10)
    make_product(sku="LAST-ONE", stock=1)
    items = [{"sku": "PLENTY", "quantity": 1}, {"sku": "LAST-ONE", "quantity": 2}]

    response = client_for(customer).post("/api/v1/orders/", {"items": items}, format="json")

    assert response.status_code == 409
    error = response.json()["errors"][0]
    assert error["code"] == "sold_out"
    assert "LAST-ONE" in error["detail"]
    assert "PLENTY" not in error["detail"]
    assert not Order.objects.exists()
    assert not OutboxMessage.objects.exists()
    assert not NotificationEvent.objects.exists()
    assert Product.objects.get(pk=plenty.pk).available == 10


def test_an_order_for_exactly_the_stock_left_is_accepted(customer):
    product = make_product(stock=2)

    response = client_for(customer).post(
        "/api/v1/orders/", {"items": [{"sku": product.sku, "quantity": 2}]}, format="json"
    )

    assert response.status_code == 202


def claimed(product: Product) -> int:
    return Product.objects.get(pk=product.pk).claimed


def test_stock_claimed_by_a_pending_order_refuses_the_next_until_that_order_leaves_pending(customer, staff):
    # given 2 units, both asked for by a pending order
    product = make_product(sku="PAIR", stock=2)
    first = client_for(customer).post("/api/v1/orders/", {"items": [{"sku": "PAIR", "quantity": 2}]}, format="json")
    assert first.status_code == 202
    assert claimed(product) == 2

    # when another order asks for one, it is refused: the stock is spoken for
    second = client_for(customer).post("/api/v1/orders/", {"items": [{"sku": "PAIR", "quantity": 1}]}, format="json")
    assert second.status_code == 409
    assert second.json()["errors"][0]["code"] == "sold_out"

    # and once the first is cancelled while still pending, its claim is given back and it is accepted
    assert client_for(customer).post(f"/api/v1/orders/{first.json()['id']}/cancel/").status_code == 200
    assert claimed(product) == 0
    third = client_for(customer).post("/api/v1/orders/", {"items": [{"sku": "PAIR", "quantity": 1}]}, format="json")
    assert third.status_code == 202
    assert claimed(product) == 1


def announcements(order_id: int) -> list[tuple[str, str]]:
    """The order's notification events, oldest first, as (type, status in the payload)."""
    events = NotificationEvent.objects.filter(payload__id=order_id).order_by("created_at", "event_type")
    return [(event.event_type, event.payload["status"]) for event in events]


def test_an_order_is_announced_as_placed_when_it_leaves_pending_and_only_then(customer):
    product = make_product(stock=1)
    items = [{"sku": product.sku, "quantity": 1}]
    placed = client_for(customer).post("/api/v1/orders/", {"items": items}, format="json")
    order = Order.objects.get(pk=placed.json()["id"])
    assert announcements(order.pk) == []  # placing writes no notification

    assert order_reserve(order_id=order.pk) == "reserved"
    assert order_reserve(order_id=order.pk) == "reserved"  # a redelivery announces nothing twice

    assert announcements(order.pk) == [("order.pending", "pending"), ("order.reserved", "reserved")]
    assert NotificationEvent.objects.get(event_type="order.pending").created_at == order.created_at


def test_an_order_cancelled_or_rejected_while_pending_is_announced_as_placed_first(customer):
    product = make_product(stock=1)
    cancelled = make_order(customer=customer, lines=[(product, 1)])
    rejected = make_order(customer=customer, lines=[(product, 1)])
    stock_adjust(product=product, delta=-1, reason="damaged")

    assert client_for(customer).post(f"/api/v1/orders/{cancelled.pk}/cancel/").status_code == 200
    assert order_reserve(order_id=rejected.pk) == "rejected"

    assert announcements(cancelled.pk) == [("order.pending", "pending"), ("order.cancelled", "cancelled")]
    assert announcements(rejected.pk) == [("order.pending", "pending"), ("order.rejected", "rejected")]


def test_an_order_leaving_pending_gives_back_its_claims_whether_reserved_or_rejected(customer):
    plenty = make_product(sku="PLENTY", stock=10)
    scarce = make_product(sku="SCARCE", stock=3)
    served = make_order(customer=customer, lines=[(plenty, 2), (scarce, 1)])
    refused = make_order(customer=customer, lines=[(plenty, 1), (scarce, 2)])
    assert (claimed(plenty), claimed(scarce)) == (3, 3)
    stock_adjust(product=scarce, delta=-1, reason="damaged")

    assert order_reserve(order_id=served.pk) == "reserved"
    assert order_reserve(order_id=refused.pk) == "rejected"
    assert order_reserve(order_id=served.pk) == "reserved"  # a redelivery gives back nothing twice

    assert (claimed(plenty), claimed(scarce)) == (0, 0)
    assert stock_claim_discrepancies() == []


@pytest.mark.parametrize(
    ("payload", "bad_attr"),
    [
        ({}, "items"),
        ({"items": []}, "items"),
        ({"items": "nope"}, "items"),
        ({"items": [{"sku": "NOPE", "quantity": 1}]}, "items.0.sku"),
        ({"items": [{"sku": "{sku}", "quantity": 0}]}, "items.0.quantity"),
        ({"items": [{"sku": "{sku}", "quantity": 1001}]}, "items.0.quantity"),
        ({"items": [{"sku": "{sku}", "quantity": "two"}]}, "items.0.quantity"),
        ({"items": [{"sku": "{sku}", "quantity": 1}, {"sku": "{sku}", "quantity": 1}]}, "items.1.sku"),
        ({"items": [{"sku": "{inactive}", "quantity": 1}]}, "items.0.sku"),
        ({"items": [{"sku": "{sku}", "quantity": 1}], "email": "not-an-email"}, "email"),
        ({"items": [{"sku": "{sku}", "quantity": 1}] * 101}, "items"),
    ],
)
def test_bad_orders_are_refused_with_field_errors_and_change_nothing(customer, payload, bad_attr):
    product = make_product(sku="GOOD")
    make_product(sku="OFF", active=False)
    rendered = json.loads(json.dumps(payload).replace("{sku}", "GOOD").replace("{inactive}", "OFF"))

    response = client_for(customer).post("/api/v1/orders/", rendered, format="json")

    assert response.status_code == 400
    assert response.json()["type"] == "validation_error"
    assert any(attr.startswith(bad_attr) for attr in attrs(response)), attrs(response)
    assert not Order.objects.exists()
    assert Product.objects.get(pk=product.pk).available == 10


def test_an_order_mixing_currencies_is_refused(customer):
    usd, eur = make_product(currency="USD"), make_product(currency="EUR")

    response = client_for(customer).post(
        "/api/v1/orders/",
        {"items": [{"sku": usd.sku, "quantity": 1}, {"sku": eur.sku, "quantity": 1}]},
        format="json",
    )

    assert response.status_code == 400
    assert not Order.objects.exists()


def test_clients_cannot_set_status_prices_or_totals(customer):
    product = make_product(price="10.00")

    response = client_for(customer).post(
        "/api/v1/orders/",
        {
            "items": [{"sku": product.sku, "quantity": 1, "unit_price": "0.01"}],
            "status": "paid",
            "total": "0.01",
            "paid_at": "2020-01-01T00:00:00Z",
        },
        format="json",
    )

    assert response.status_code == 202
    order = Order.objects.get()
    assert (order.status, order.total, order.paid_at) == ("pending", 10, None)
    assert order.lines.get().unit_price == 10


def test_malformed_json_is_a_400(customer):
    response = client_for(customer).post("/api/v1/orders/", "{nope", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "parse_error"


# --- visibility -----------------------------------------------------------------------------


def test_customers_see_only_their_own_orders_and_staff_see_all(customer, staff):
    other = UserFactory()
    product = make_product(stock=100)
    mine = make_order(customer=customer, lines=[(product, 1)])
    theirs = make_order(customer=other, lines=[(product, 1)])

    listed = client_for(customer).get("/api/v1/orders/").json()
    staff_listed = client_for(staff).get("/api/v1/orders/").json()

    assert [o["id"] for o in listed["results"]] == [mine.pk]
    assert listed["count"] == 1
    assert {o["id"] for o in staff_listed["results"]} == {mine.pk, theirs.pk}
    assert client_for(customer).get(f"/api/v1/orders/{theirs.pk}/").status_code == 404
    assert client_for(customer).get(f"/api/v1/orders/{theirs.pk}/events/").status_code == 404
    assert client_for(customer).post(f"/api/v1/orders/{theirs.pk}/cancel/").status_code == 404
    assert client_for(staff).get(f"/api/v1/orders/{theirs.pk}/").status_code == 200


def test_orders_can_be_filtered_by_status(customer):
    product = make_product(stock=100)
    pending = make_order(customer=customer, lines=[(product, 1)])
    reserved = make_order(customer=customer, lines=[(product, 1)])
    order_reserve(order_id=reserved.pk)

    response = client_for(customer).get("/api/v1/orders/?status=reserved")
    bad = client_for(customer).get("/api/v1/orders/?status=nonsense")

    assert [o["id"] for o in response.json()["results"]] == [reserved.pk]
    assert pending.pk not in [o["id"] for o in response.json()["results"]]
    assert bad.status_code == 400


def test_anonymous_requests_are_401(api_client):
    assert api_client.get("/api/v1/orders/").status_code == 401
    assert api_client.post("/api/v1/orders/", {}, format="json").status_code == 401
    assert api_client.get("/api/v1/products/").status_code == 401


# --- transitions ----------------------------------------------------------------------------


def test_owner_cancels_a_reserved_order_and_its_stock_returns(customer):
    product = make_product(stock=5)
    order = make_order(customer=customer, lines=[(product, 2)])
    order_reserve(order_id=order.pk)
    assert Product.objects.get(pk=product.pk).available == 3

    response = client_for(customer).post(f"/api/v1/orders/{order.pk}/cancel/")

    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert Product.objects.get(pk=product.pk).available == 5
    events = client_for(customer).get(f"/api/v1/orders/{order.pk}/events/").json()["results"]
    assert [(e["from_status"], e["to_status"], e["actor"]) for e in events] == [
        ("", "pending", "customer"),
        ("pending", "reserved", "system"),
        ("reserved", "cancelled", "customer"),
    ]


def test_a_customer_cannot_pay_ship_complete_or_refund(customer):
    order = make_order(customer=customer, lines=[(make_product(), 1)])
    order_reserve(order_id=order.pk)

    for action in ("pay", "ship", "complete", "refund"):
        response = client_for(customer).post(f"/api/v1/orders/{order.pk}/{action}/")
        assert response.status_code == 403, action
        assert response.json()["errors"][0]["code"] == "transition_not_permitted"
    assert Order.objects.get(pk=order.pk).status == "reserved"


def test_staff_take_an_order_through_payment_shipping_and_completion(staff):
    product = make_product(stock=5)
    order = make_order(lines=[(product, 1)])
    order_reserve(order_id=order.pk)
    client = client_for(staff)

    statuses = [client.post(f"/api/v1/orders/{order.pk}/{a}/").json()["status"] for a in ("pay", "ship", "complete")]

    assert statuses == ["paid", "shipped", "completed"]
    assert Order.objects.get(pk=order.pk).paid_at is not None
    assert Product.objects.get(pk=product.pk).available == 4


def test_refund_returns_the_stock(staff):
    product = make_product(stock=5)
    order = make_order(lines=[(product, 3)])
    order_reserve(order_id=order.pk)
    client = client_for(staff)
    client.post(f"/api/v1/orders/{order.pk}/pay/")

    response = client.post(f"/api/v1/orders/{order.pk}/refund/")

    assert response.json()["status"] == "refunded"
    assert Product.objects.get(pk=product.pk).available == 5


@pytest.mark.parametrize(
    ("action", "from_pending"),
    [("ship", True), ("complete", True), ("refund", True), ("pay", True)],
)
def test_a_transition_the_state_table_does_not_allow_is_409_and_changes_nothing(staff, action, from_pending):
    order = make_order(lines=[(make_product(), 1)])

    response = client_for(staff).post(f"/api/v1/orders/{order.pk}/{action}/")

    assert response.status_code == 409
    assert response.json()["errors"][0]["code"] == "invalid_transition"
    assert Order.objects.get(pk=order.pk).status == "pending"
    assert OrderEvent.objects.filter(order=order).count() == 1


def test_a_final_order_cannot_be_cancelled(customer):
    order = make_order(customer=customer, lines=[(make_product(stock=5), 1)])
    client_for(customer).post(f"/api/v1/orders/{order.pk}/cancel/")

    response = client_for(customer).post(f"/api/v1/orders/{order.pk}/cancel/")

    assert response.status_code == 409


def test_an_order_that_cannot_be_reserved_is_rejected_with_the_reason_per_line(customer):
    scarce = make_product(sku="SCARCE", stock=2)
    plenty = make_product(sku="PLENTY", stock=10)
    order = make_order(customer=customer, lines=[(plenty, 2), (scarce, 2)])
    stock_adjust(product=scarce, delta=-1, reason="damaged after the order was placed")

    assert order_reserve(order_id=order.pk) == "rejected"

    event = OrderEvent.objects.filter(order=order).last()
    assert event is not None
    assert event.to_status == "rejected"
    assert event.data == {"lines": [{"sku": "SCARCE", "quantity": 2, "reason": "insufficient_stock"}]}
    assert Product.objects.get(pk=plenty.pk).available == 10


# --- products -------------------------------------------------------------------------------


def test_staff_create_products_and_adjust_stock(staff, customer):
    client = client_for(staff)

    created = client.post("/api/v1/products/", {"sku": "NEW-1", "name": "New", "price": "3.20", "stock": 4})
    adjusted = client.post("/api/v1/products/NEW-1/stock-adjustments/", {"delta": 6, "reason": "delivery"})
    refused = client.post("/api/v1/products/NEW-1/stock-adjustments/", {"delta": -11, "reason": "theft"})
    listed = client_for(customer).get("/api/v1/products/").json()

    assert created.status_code == 201
    assert created.json() == {
        "sku": "NEW-1", "name": "New", "price": "3.20", "currency": "USD", "available": 4, "active": True
    }  # fmt: skip
    assert adjusted.status_code == 201
    assert adjusted.json()["available"] == 10
    assert refused.status_code == 409
    assert listed["count"] == 1
    assert listed["results"][0]["available"] == 10


def test_customers_cannot_create_products_or_adjust_stock(customer):
    product = make_product()
    client = client_for(customer)

    assert client.post("/api/v1/products/", {"sku": "X", "name": "X", "price": "1", "stock": 1}).status_code == 403
    assert (
        client.post(f"/api/v1/products/{product.sku}/stock-adjustments/", {"delta": 1, "reason": "x"}).status_code
        == 403
    )


def test_product_validation_and_duplicates(staff):
    client = client_for(staff)
    client.post("/api/v1/products/", {"sku": "A1", "name": "A", "price": "1.00", "stock": 1})

    duplicate = client.post("/api/v1/products/", {"sku": "A1", "name": "A", "price": "1.00", "stock": 1})
    negative = client.post("/api/v1/products/", {"sku": "B1", "name": "B", "price": "-1", "stock": -1})
    unknown = client.get("/api/v1/products/NOPE/")

    assert duplicate.status_code == 409
    assert negative.status_code == 400
    assert attrs(negative) == {"price", "stock"}
    assert unknown.status_code == 404
