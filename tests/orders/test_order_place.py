"""Placing an order (``order_place`` and ``POST /orders/``): what is accepted, what is refused
and why, and what placing writes."""

import json

import pytest
from django.db import connection

from core.errors import InvalidFields
from core.models import OutboxMessage
from notifications.models import NotificationEvent
from orders.models import Order, OrderEvent
from orders.services import OrderItem, SoldOut, order_place
from orders.services.placement import PLACE_FUNCTION, place_function_install
from tests.factories import UserFactory, make_product

pytestmark = pytest.mark.django_db


def attrs(response) -> set[str]:
    return {error["attr"] for error in response.json()["errors"]}


def claimed(product) -> int:
    product.refresh_from_db(fields=["claimed"])
    return product.claimed


def available(product) -> int:
    product.refresh_from_db(fields=["available"])
    return product.available


# --- through the API --------------------------------------------------------------------------


def test_create_order_answers_202_with_the_pending_order_and_its_location(customer, client_for):
    # given a product at 12.50
    product = make_product(stock=5, price="12.50")

    # when the customer orders two
    response = client_for(customer).post(
        "/api/v1/orders/", {"items": [{"sku": product.sku, "quantity": 2}]}, format="json"
    )

    # then the pending order is answered, with where to find it
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
    # and the stock is reserved later, by a worker
    assert available(product) == 5


def test_an_order_the_stock_cannot_serve_in_full_is_refused_with_409_and_writes_nothing(customer, client_for):
    # given one product with plenty and one with a single unit
    plenty = make_product(sku="PLENTY", stock=10)
    make_product(sku="LAST-ONE", stock=1)
    items = [{"sku": "PLENTY", "quantity": 1}, {"sku": "LAST-ONE", "quantity": 2}]

    # when an order asks for two of the last one
    response = client_for(customer).post("/api/v1/orders/", {"items": items}, format="json")

    # then it is refused as sold out, naming the short SKU only, and nothing is written
    assert response.status_code == 409
    error = response.json()["errors"][0]
    assert error["code"] == "sold_out"
    assert "LAST-ONE" in error["detail"]
    assert "PLENTY" not in error["detail"]
    assert not Order.objects.exists()
    assert not OutboxMessage.objects.exists()
    assert not NotificationEvent.objects.exists()
    assert available(plenty) == 10


def test_an_order_for_exactly_the_stock_left_is_accepted(customer, client_for):
    # given two units
    product = make_product(stock=2)

    # when an order asks for both
    response = client_for(customer).post(
        "/api/v1/orders/", {"items": [{"sku": product.sku, "quantity": 2}]}, format="json"
    )

    # then it is accepted
    assert response.status_code == 202


def test_stock_claimed_by_a_pending_order_refuses_the_next_until_that_order_leaves_pending(customer, client_for):
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
def test_bad_orders_are_refused_with_field_errors_and_change_nothing(customer, client_for, payload, bad_attr):
    # given a product for sale and one that is not
    product = make_product(sku="GOOD")
    make_product(sku="OFF", active=False)
    rendered = json.loads(json.dumps(payload).replace("{sku}", "GOOD").replace("{inactive}", "OFF"))

    # when a malformed order, or one breaking a rule, is sent
    response = client_for(customer).post("/api/v1/orders/", rendered, format="json")

    # then it is a 400 naming the field, and nothing changes
    assert response.status_code == 400
    assert response.json()["type"] == "validation_error"
    assert any(attr.startswith(bad_attr) for attr in attrs(response)), attrs(response)
    assert not Order.objects.exists()
    assert available(product) == 10


def test_an_order_mixing_currencies_is_refused(customer, client_for):
    # given a product priced in USD and one in EUR
    usd, eur = make_product(currency="USD"), make_product(currency="EUR")

    # when one order asks for both
    response = client_for(customer).post(
        "/api/v1/orders/",
        {"items": [{"sku": usd.sku, "quantity": 1}, {"sku": eur.sku, "quantity": 1}]},
        format="json",
    )

    # then it is refused
    assert response.status_code == 400
    assert not Order.objects.exists()


def test_clients_cannot_set_status_prices_or_totals(customer, client_for):
    # given a product at 10.00
    product = make_product(price="10.00")

    # when an order also sends a status, a price, a total and a payment time
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

    # then they are ignored
    assert response.status_code == 202
    order = Order.objects.get()
    assert (order.status, order.total, order.paid_at) == ("pending", 10, None)
    assert order.lines.get().unit_price == 10


def test_malformed_json_is_a_400(customer, client_for):
    # when the body is not JSON
    response = client_for(customer).post("/api/v1/orders/", "{nope", content_type="application/json")

    # then it is a parse error
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "parse_error"


def test_anonymous_requests_are_401(api_client):
    # when nobody is logged in, then the orders and products are refused
    assert api_client.get("/api/v1/orders/").status_code == 401
    assert api_client.post("/api/v1/orders/", {}, format="json").status_code == 401
    assert api_client.get("/api/v1/products/").status_code == 401


# --- the service ------------------------------------------------------------------------------


def test_order_place_names_every_line_it_refuses_with_its_code():
    # given a product for sale and one that is not
    make_product(sku="GOOD")
    make_product(sku="OFF", active=False)
    items = [OrderItem("GOOD", 1), OrderItem("NOPE", 1), OrderItem("OFF", 1), OrderItem("GOOD", 2)]

    # when an order asks for them, an unknown SKU and one of them twice
    with pytest.raises(InvalidFields) as refused:
        order_place(customer=UserFactory(), email=None, items=items)

    # then each bad line is named, with why
    assert [(e.attr, e.code) for e in refused.value.errors] == [
        ("items.1.sku", "unknown_sku"),
        ("items.2.sku", "product_inactive"),
        ("items.3.sku", "duplicate_sku"),
    ]
    assert not Order.objects.exists()


def test_order_place_refuses_mixed_currencies_and_a_customer_without_an_address():
    # given products in two currencies and a customer without an e-mail address
    usd, eur = make_product(currency="USD"), make_product(currency="EUR")
    nameless = UserFactory(email="")

    # when each is placed, then each is refused for its field
    with pytest.raises(InvalidFields) as mixed:
        order_place(customer=nameless, email=None, items=[OrderItem(usd.sku, 1), OrderItem(eur.sku, 1)])
    with pytest.raises(InvalidFields) as no_address:
        order_place(customer=nameless, email=None, items=[OrderItem(usd.sku, 1)])
    assert [(e.attr, e.code) for e in mixed.value.errors] == [("items", "mixed_currencies")]
    assert [(e.attr, e.code) for e in no_address.value.errors] == [("email", "email_required")]
    # and an address given with the order is enough
    assert order_place(customer=nameless, email="n@example.com", items=[OrderItem(usd.sku, 1)]).email == "n@example.com"


def test_order_place_claims_the_stock_and_refuses_what_the_claims_leave_short():
    # given 3 units
    product = make_product(stock=3)

    # when an order for 2 is placed, then one for 2 more
    order = order_place(customer=UserFactory(), email=None, items=[OrderItem(product.sku, 2)])
    with pytest.raises(SoldOut):
        order_place(customer=UserFactory(), email=None, items=[OrderItem(product.sku, 2)])

    # then the first is pending, with its claim, its event and its reservation task
    assert (order.status, order.total, claimed(product), available(product)) == ("pending", 20, 2, 3)
    assert OrderEvent.objects.get(order=order).to_status == "pending"
    assert OutboxMessage.objects.get().args == [order.pk]
    # and the second wrote nothing
    assert Order.objects.count() == 1


# --- the placing statement, a function of the database ----------------------------------------


def function_source() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = %s", [PLACE_FUNCTION])
        return [row[0] for row in cursor.fetchall()]


def test_migrate_installs_the_placing_function_as_the_code_defines_it():
    # given the database migrate made
    # when the function is installed again, then nothing changes: it is already the code's
    assert place_function_install() is False
    assert len(function_source()) == 1


def test_an_older_placing_function_is_replaced_by_the_codes():
    # given a database holding another definition of the function, under the same name
    with connection.cursor() as cursor:
        cursor.execute(f"DROP FUNCTION {PLACE_FUNCTION}")
        cursor.execute(f"CREATE FUNCTION {PLACE_FUNCTION}(p_cap integer) RETURNS integer LANGUAGE sql AS 'SELECT 1'")

    # when it is installed
    changed = place_function_install()

    # then the code's is the only one (installing it again changes nothing), and orders are placed with it
    assert changed is True
    assert (place_function_install(), len(function_source())) == (False, 1)
    product = make_product(stock=3)
    order = order_place(customer=UserFactory(), email=None, items=[OrderItem(product.sku, 2)])
    assert (order.status, claimed(product)) == ("pending", 2)
